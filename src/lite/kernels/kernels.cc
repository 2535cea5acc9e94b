// The kernel table and the checks kernels share.
#include "kernel.h"

namespace tessera::lite {

std::string shape_string(const std::vector<int32_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

static std::string where(const OpContext& ctx) {
  return "operator " + std::to_string(ctx.index) + " (" + schema::EnumNameOpCode(ctx.desc->code) +
         "): ";
}

Result op_error(const OpContext& ctx, const std::string& message) {
  return make_result(Status::invalid_model, where(ctx) + message);
}

Result op_unsupported(const OpContext& ctx, const std::string& message) {
  return make_result(Status::unsupported, where(ctx) + message);
}

Result expect_arity(const OpContext& ctx, size_t min_in, size_t max_in, size_t outs) {
  if (ctx.in.size() < min_in || ctx.in.size() > max_in || ctx.out.size() != outs) {
    return op_error(ctx, "takes " + std::to_string(min_in) +
                             (max_in != min_in ? "-" + std::to_string(max_in) : "") +
                             " inputs and " + std::to_string(outs) + " outputs, got " +
                             std::to_string(ctx.in.size()) + " and " +
                             std::to_string(ctx.out.size()));
  }
  for (size_t i = 0; i < min_in; ++i) {
    if (!ctx.in[i]) return op_error(ctx, "input " + std::to_string(i) + " is required");
  }
  return {};
}

Result expect_dtype(const OpContext& ctx, DType dtype) {
  auto check = [&](const TensorDesc* t, const char* kind, size_t i) -> Result {
    if (t && t->dtype != dtype) {
      if (dtype == DType::float32 && (t->dtype == DType::int8 || t->dtype == DType::uint8)) {
        return op_unsupported(ctx, std::string("integer kernels are not in this build (") + kind +
                                       " " + std::to_string(i) + " is " + dtype_name(t->dtype) +
                                       ")");
      }
      return op_error(ctx, std::string(kind) + " " + std::to_string(i) + " is " +
                               dtype_name(t->dtype) + ", expected " + dtype_name(dtype));
    }
    return {};
  };
  for (size_t i = 0; i < ctx.in.size(); ++i) {
    if (Result r = check(ctx.in[i], "input", i); !r.ok()) return r;
  }
  for (size_t i = 0; i < ctx.out.size(); ++i) {
    if (Result r = check(ctx.out[i], "output", i); !r.ok()) return r;
  }
  return {};
}

Result expect_output_shape(const OpContext& ctx, size_t i, const std::vector<int32_t>& shape) {
  if (ctx.out[i]->shape != shape) {
    return op_error(ctx, "output " + std::to_string(i) + " has shape " +
                             shape_string(ctx.out[i]->shape) + ", the inputs give " +
                             shape_string(shape));
  }
  return {};
}

const Kernel& kernel_for(schema::OpCode code) {
  switch (code) {
    case schema::OpCode_Conv2D:
      return kConv2D;
    case schema::OpCode_DepthwiseConv2D:
      return kDepthwiseConv2D;
    case schema::OpCode_FullyConnected:
      return kFullyConnected;
    case schema::OpCode_MaxPool2D:
      return kMaxPool2D;
    case schema::OpCode_AveragePool2D:
      return kAveragePool2D;
    case schema::OpCode_Reshape:
      return kReshape;
    case schema::OpCode_Transpose:
      return kTranspose;
    case schema::OpCode_Concat:
      return kConcat;
    case schema::OpCode_Pad:
      return kPad;
    case schema::OpCode_Mean:
    case schema::OpCode_Sum:
      return kMean;
    case schema::OpCode_Resize:
      return kResize;
    case schema::OpCode_TransposeConv2D:
      return kTransposeConv2D;
    case schema::OpCode_EmbeddingLookup:
      return kEmbeddingLookup;
    case schema::OpCode_Slice:
      return kSlice;
    case schema::OpCode_Lstm:
      return kLstm;
    case schema::OpCode_Softmax:
      return kSoftmax;
    case schema::OpCode_Add:
    case schema::OpCode_Sub:
    case schema::OpCode_Mul:
    case schema::OpCode_Div:
    case schema::OpCode_Maximum:
    case schema::OpCode_Minimum:
      return kBinary;
    case schema::OpCode_Logistic:
    case schema::OpCode_Tanh:
    case schema::OpCode_Relu:
    case schema::OpCode_Relu6:
    case schema::OpCode_HardSwish:
    case schema::OpCode_Neg:
    case schema::OpCode_Abs:
    case schema::OpCode_Exp:
    case schema::OpCode_Sqrt:
    case schema::OpCode_Square:
    case schema::OpCode_Silu:
      return kUnary;
    case schema::OpCode_Quantize:
      return kQuantize;
    case schema::OpCode_Dequantize:
      return kDequantize;
  }
  return kUnsupported;
}

bool is_int8_per_tensor(const TensorDesc& t) {
  return t.dtype == DType::int8 && t.scales.size() == 1 && t.zero_points[0] >= -128 &&
         t.zero_points[0] <= 127;
}

Result prepare_int8_float(OpContext& ctx, int inputs, size_t* scratch_bytes) {
  Int8Float& q = ctx.int8;
  q = {};
  q.inputs = inputs;
  bool all_float = ctx.out[0]->dtype == DType::float32, all_int8 = is_int8_per_tensor(*ctx.out[0]);
  for (int i = 0; i < inputs; ++i) {
    const TensorDesc* t = ctx.in[static_cast<size_t>(i)];
    all_float = all_float && t && t->dtype == DType::float32;
    all_int8 = all_int8 && t && is_int8_per_tensor(*t);
  }
  if (all_float) return {};
  if (!all_int8) {
    return op_error(ctx,
                    "takes float32, or int8 with one scale and zero point, for every input and "
                    "the output");
  }
  q.on = true;
  size_t at = (*scratch_bytes + 63) / 64 * 64;
  for (int i = 0; i <= inputs; ++i) {
    const TensorDesc& t = i < inputs ? *ctx.in[static_cast<size_t>(i)] : *ctx.out[0];
    if (i < inputs) {
      q.scale[i] = t.scales[0];
      q.zero[i] = static_cast<int32_t>(t.zero_points[0]);
    }
    q.at[i] = at;
    at += (static_cast<size_t>(t.numel) * sizeof(float) + 63) / 64 * 64;
  }
  q.out_inv_scale = 1.0f / ctx.out[0]->scales[0];
  q.out_zero = static_cast<int32_t>(ctx.out[0]->zero_points[0]);
  *scratch_bytes = at;
  return {};
}

Result check_int8_layer(const OpContext& ctx, int w_axis, int channels, schema::Activation act,
                        Requant* q) {
  const TensorDesc &x = *ctx.in[0], &w = *ctx.in[1], &y = *ctx.out[0];
  if (!is_int8_per_tensor(x) || !is_int8_per_tensor(y)) {
    return op_error(ctx, "integer input and output must be int8 with one scale and zero point");
  }
  if (w.dtype != DType::int8 || !w.constant ||
      (w.scales.size() != 1 &&
       (w.scales.size() != static_cast<size_t>(channels) || w.quant_axis != w_axis))) {
    return op_error(ctx,
                    "integer weights must be constant int8 with one scale, or one per "
                    "output channel along axis " +
                        std::to_string(w_axis));
  }
  for (int64_t z : w.zero_points) {
    if (z != 0) return op_error(ctx, "integer weights must be symmetric (zero point 0)");
  }
  if (ctx.in.size() > 2 && ctx.in[2] && ctx.in[2]->dtype != DType::int32) {
    return op_error(ctx, "the bias of an integer layer must be int32");
  }
  q->x_scale = x.scales[0];
  q->y_inv_scale = 1.0f / y.scales[0];
  q->x_zero = static_cast<int32_t>(x.zero_points[0]);
  q->y_zero = static_cast<int32_t>(y.zero_points[0]);
  q->lo = -128;
  q->hi = 127;
  if (act != schema::Activation_None) q->lo = std::max(q->lo, q->y_zero);
  if (act == schema::Activation_Relu6) {
    q->hi = std::min(q->hi, q->y_zero + static_cast<int32_t>(std::lrintf(6.0f * q->y_inv_scale)));
  }
  q->per_channel = w.scales.size() > 1;
  return {};
}

const Kernel kUnsupported{[](OpContext& ctx, size_t*) {
                            return op_unsupported(ctx, "this build has no kernel for it yet");
                          },
                          [](const OpContext&) {}};

}  // namespace tessera::lite
