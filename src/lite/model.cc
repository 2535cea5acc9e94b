// Loading and checking lite models (see model.h).
#include "model.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <limits>

namespace tessera::lite {
namespace {

constexpr int64_t kMaxElements = int64_t{1} << 31;  // per tensor

template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string s;
  auto add = [&](const auto& p) {
    if constexpr (std::is_arithmetic_v<std::decay_t<decltype(p)>>) {
      s += std::to_string(p);
    } else {
      s += p;
    }
  };
  (add(parts), ...);
  return s;
}

Result invalid(std::string message) {
  return make_result(Status::invalid_model, std::move(message));
}

bool to_dtype(schema::DType d, DType& out) {
  switch (d) {
    case schema::DType_Float32:
      return out = DType::float32, true;
    case schema::DType_Float16:
      return out = DType::float16, true;
    case schema::DType_Int8:
      return out = DType::int8, true;
    case schema::DType_UInt8:
      return out = DType::uint8, true;
    case schema::DType_Int32:
      return out = DType::int32, true;
    case schema::DType_Int64:
      return out = DType::int64, true;
  }
  return false;
}

Result check_tensor(const schema::Model& m, int index, TensorDesc& t) {
  const schema::Tensor* fb = m.tensors()->Get(static_cast<flatbuffers::uoffset_t>(index));
  std::string where = cat("tensor ", index);
  if (!fb) return invalid(where + " is missing");
  if (fb->name()) t.name = std::string_view(fb->name()->c_str(), fb->name()->size());
  if (!to_dtype(fb->dtype(), t.dtype)) {
    return invalid(cat(where, " has an unknown dtype code ", static_cast<int>(fb->dtype())));
  }
  if (fb->shape()) {
    if (fb->shape()->size() > kMaxRank) {
      return invalid(cat(where, " has ", fb->shape()->size(), " dimensions; at most ", kMaxRank));
    }
    // The extent (the product of the dims other than 0) is bounded too: kernels take
    // strides and loop bounds from the dims of empty tensors as well.
    int64_t extent = 1;
    for (int32_t d : *fb->shape()) {
      if (d < 0) return invalid(cat(where, " has a negative dimension ", d));
      t.shape.push_back(d);
      t.numel *= d;
      extent *= d > 0 ? d : 1;
      if (t.numel > kMaxElements || extent > kMaxElements) {
        return invalid(cat(where, " has more than 2^31 elements (or dims around a 0 that would)"));
      }
    }
  }
  t.bytes = static_cast<size_t>(t.numel) * dtype_size(t.dtype);
  if (fb->buffer() >= 0) {
    const auto* buffers = m.buffers();
    if (!buffers || static_cast<uint32_t>(fb->buffer()) >= buffers->size()) {
      return invalid(cat(where, " names buffer ", fb->buffer(), ", but the model has ",
                         buffers ? buffers->size() : 0));
    }
    // The verifier checks the vector's bounds, not its elements' 8-byte alignment.
    if (reinterpret_cast<uintptr_t>(buffers->Data()) % alignof(schema::Buffer) != 0) {
      return invalid("the model's buffer table is misaligned");
    }
    const schema::Buffer* b = buffers->Get(static_cast<flatbuffers::uoffset_t>(fb->buffer()));
    uint64_t data_size = m.data() ? m.data()->size() : 0;
    if (b->size() != t.bytes) {
      return invalid(cat(where, " (", std::string(t.name), ") needs ", t.bytes,
                         " bytes, its buffer holds ", b->size()));
    }
    if (b->offset() > data_size || b->size() > data_size - b->offset()) {
      return invalid(cat(where, " has a buffer [", b->offset(), ", +", b->size(),
                         ") outside the model's ", data_size, " bytes of data"));
    }
    if (b->offset() % 64 != 0) {
      return invalid(cat(where, "'s buffer offset ", b->offset(), " is not 64-byte aligned"));
    }
    // A model without a data block can still hold empty constants: they point at no bytes.
    alignas(64) static const uint8_t kNoBytes[64] = {};
    t.constant = m.data() ? m.data()->data() + b->offset() : kNoBytes;
  }
  if (const schema::Quantization* q = fb->quantization()) {
    size_t scales = q->scale() ? q->scale()->size() : 0;
    size_t zeros = q->zero_point() ? q->zero_point()->size() : 0;
    if (scales == 0 || zeros != scales) {
      return invalid(cat(where, " has ", scales, " quantization scales and ", zeros,
                         " zero points; expected the same number, at least one"));
    }
    t.quant_axis = q->axis();
    if (scales > 1) {
      if (t.quant_axis < 0 || t.quant_axis >= t.rank() ||
          static_cast<size_t>(t.shape[static_cast<size_t>(t.quant_axis)]) != scales) {
        return invalid(cat(where, " has ", scales, " per-channel scales along axis ", t.quant_axis,
                           ", which does not match its shape"));
      }
    }
    for (size_t i = 0; i < scales; ++i) {
      float s = q->scale()->Get(static_cast<flatbuffers::uoffset_t>(i));
      int64_t z = q->zero_point()->Get(static_cast<flatbuffers::uoffset_t>(i));
      if (!(s > 0) || !std::isfinite(s)) {
        return invalid(cat(where, " has a quantization scale that is not positive and finite"));
      }
      if (z < -32768 || z > 65535) return invalid(cat(where, " has a zero point out of range"));
      t.scales.push_back(s);
      t.zero_points.push_back(z);
    }
  }
  return {};
}

Result check_index_list(const flatbuffers::Vector<int32_t>* list, size_t tensors,
                        const std::string& what, std::vector<int>& out, bool optional) {
  if (!list) return {};
  for (int32_t i : *list) {
    bool absent = optional && i == -1;
    if (!absent && (i < 0 || static_cast<size_t>(i) >= tensors)) {
      return invalid(cat(what, " names tensor ", i, ", but the model has ", tensors));
    }
    out.push_back(i);
  }
  return {};
}

}  // namespace

Result make_result(Status status, std::string message) { return {status, std::move(message)}; }

ModelData::~ModelData() {
  if (mapping) munmap(const_cast<void*>(mapping), mapping_size);
}

Result check_model(const uint8_t* bytes, size_t size, ModelData& out) {
  if (size < 8 || !schema::ModelBufferHasIdentifier(bytes)) {
    return invalid("not a Tessera lite model (no 'TSLT' identifier)");
  }
  flatbuffers::Verifier::Options options;
  options.max_depth = 16;
  options.max_tables = 10'000'000;
  flatbuffers::Verifier verifier(bytes, size, options);
  if (!schema::VerifyModelBuffer(verifier)) {
    return invalid("the model's flatbuffer is malformed (truncated or corrupted)");
  }
  const schema::Model* m = schema::GetModel(bytes);
  out.model = m;
  size_t count = m->tensors() ? m->tensors()->size() : 0;
  out.tensors.resize(count);
  for (size_t i = 0; i < count; ++i) {
    if (Result r = check_tensor(*m, static_cast<int>(i), out.tensors[i]); !r.ok()) return r;
  }
  if (Result r = check_index_list(m->inputs(), count, "the model's inputs", out.inputs, false);
      !r.ok()) {
    return r;
  }
  if (Result r = check_index_list(m->outputs(), count, "the model's outputs", out.outputs, false);
      !r.ok()) {
    return r;
  }
  // Every activation an operator reads is a model input or the output of an earlier one.
  std::vector<char> ready(count, 0);
  for (int i : out.inputs) {
    if (out.tensors[static_cast<size_t>(i)].constant) {
      return invalid(cat("model input ", i, " is a constant"));
    }
    ready[static_cast<size_t>(i)] = 1;
  }
  for (size_t i = 0; i < count; ++i) {
    if (out.tensors[i].constant) ready[i] = 1;
  }
  if (m->operators()) {
    for (flatbuffers::uoffset_t k = 0; k < m->operators()->size(); ++k) {
      const schema::Operator* op = m->operators()->Get(k);
      std::string where = cat("operator ", k);
      if (!op) return invalid(where + " is missing");
      if (op->opcode() > schema::OpCode_MAX) {
        return invalid(cat(where, " has an unknown op code ", static_cast<int>(op->opcode())));
      }
      OpDesc d;
      d.code = op->opcode();
      d.op = op;
      where += cat(" (", schema::EnumNameOpCode(d.code), ")");
      if (Result r = check_index_list(op->inputs(), count, where, d.inputs, true); !r.ok())
        return r;
      if (Result r = check_index_list(op->outputs(), count, where, d.outputs, false); !r.ok()) {
        return r;
      }
      for (int i : d.inputs) {
        if (i >= 0 && !ready[static_cast<size_t>(i)]) {
          return invalid(cat(where, " reads tensor ", i, " before anything writes it"));
        }
      }
      for (int o : d.outputs) {
        if (ready[static_cast<size_t>(o)]) {
          return invalid(cat(where, " writes tensor ", o,
                             ", which is a constant, an input or "
                             "already written"));
        }
        ready[static_cast<size_t>(o)] = 1;
      }
      out.ops.push_back(std::move(d));
    }
  }
  for (int o : out.outputs) {
    if (!ready[static_cast<size_t>(o)])
      return invalid(cat("model output ", o, " is never written"));
  }
  return {};
}

Model::Model() : data_(std::make_unique<ModelData>()) {}
Model::~Model() = default;

Result Model::load(const std::string& path, std::unique_ptr<Model>& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_result(Status::io_error, "cannot open " + path);
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    ::close(fd);
    return make_result(Status::io_error, path + " is empty or unreadable");
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return make_result(Status::io_error, "cannot map " + path);
  std::unique_ptr<Model> model(new Model());
  model->data_->mapping = map;
  model->data_->mapping_size = size;
  if (Result r = check_model(static_cast<const uint8_t*>(map), size, *model->data_); !r.ok()) {
    r.message = path + ": " + r.message;
    return r;
  }
  out = std::move(model);
  return {};
}

Result Model::from_buffer(const void* data, size_t size, std::unique_ptr<Model>& out) {
  if (!data) return make_result(Status::invalid_argument, "from_buffer: no data");
  std::unique_ptr<Model> model(new Model());
  if (Result r = check_model(static_cast<const uint8_t*>(data), size, *model->data_); !r.ok()) {
    return r;
  }
  out = std::move(model);
  return {};
}

uint32_t Model::version() const { return data_->model->version(); }
size_t Model::num_operators() const { return data_->ops.size(); }

std::string_view Model::metadata(std::string_view key) const {
  const auto* entries = data_->model->metadata();
  if (!entries) return {};
  for (const schema::Metadata* e : *entries) {
    if (e && e->key()->string_view() == key && e->value()) return e->value()->string_view();
  }
  return {};
}

const char* status_name(Status status) {
  switch (status) {
    case Status::ok:
      return "ok";
    case Status::io_error:
      return "io_error";
    case Status::invalid_model:
      return "invalid_model";
    case Status::invalid_argument:
      return "invalid_argument";
    case Status::unsupported:
      return "unsupported";
    case Status::not_allocated:
      return "not_allocated";
  }
  return "?";
}

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::float32:
    case DType::int32:
      return 4;
    case DType::float16:
      return 2;
    case DType::int8:
    case DType::uint8:
      return 1;
    case DType::int64:
      return 8;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::float32:
      return "float32";
    case DType::float16:
      return "float16";
    case DType::int8:
      return "int8";
    case DType::uint8:
      return "uint8";
    case DType::int32:
      return "int32";
    case DType::int64:
      return "int64";
  }
  return "?";
}

}  // namespace tessera::lite
