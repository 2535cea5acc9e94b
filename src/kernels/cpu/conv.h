// Kernels of the neural-network ops, as plain functions over contiguous raw arrays:
// convolution by im2col + gemm (forward, gradient to the input = transposed
// convolution, gradient to the weight), and separable per-plane linear maps
// ("taps"), which are what average pooling, adaptive average pooling and
// nearest/bilinear interpolation compute.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tessera::cpu {

// One convolution y = conv(x, w). Spatial sizes are padded to three dimensions with
// leading ones, so 1-d and 2-d convolutions run through the 3-d code.
struct ConvGeometry {
  int64_t batch = 0;
  int64_t in_channels = 0;   // channels of x
  int64_t out_channels = 0;  // channels of y
  int64_t groups = 1;
  int64_t in[3] = {1, 1, 1};   // spatial size of x
  int64_t out[3] = {1, 1, 1};  // spatial size of y
  int64_t kernel[3] = {1, 1, 1};
  int64_t stride[3] = {1, 1, 1};
  int64_t pad[3] = {0, 0, 0};  // leading padding; the trailing side follows from `out`
  int64_t dilation[3] = {1, 1, 1};
  int algorithm = 0;  // 0: Winograd where it fits, else direct; 1: direct; 2: Winograd if it fits
  // Activation layout inside oneDNN: 0 by channels (plain for inputs of few channels), 1 the
  // caller's plain layout (no reorders), 2 oneDNN's blocked choice (reordered in and out).
  int layout = 0;

  int64_t in_plane() const { return in[0] * in[1] * in[2]; }
  int64_t out_plane() const { return out[0] * out[1] * out[2]; }
  int64_t kernel_volume() const { return kernel[0] * kernel[1] * kernel[2]; }
  // A 1x1 kernel with stride 1 and no padding: x is its own im2col matrix.
  bool pointwise() const;
};

// y[N, Cout, out] = conv(x[N, Cin, in], w[Cout, Cin/G, kernel]) + b[Cout] (b may be null),
// then max(y, 0) when relu is set. Positions outside x (padding) read as zero. T is float
// or double.
template <typename T>
void conv_forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y,
                  bool relu = false);

// gx[N, Cin, in] = the adjoint of conv_forward in x applied to gy[N, Cout, out]; this is
// also the transposed convolution of gy with w. gx is overwritten.
template <typename T>
void conv_backward_data(const ConvGeometry& g, const T* gy, const T* w, T* gx);

// gw[Cout, Cin/G, kernel] = the gradient of <conv_forward(x, w), gy> in w. gw is
// overwritten. The batch is summed in fixed chunks in a fixed order, so results do not
// depend on the thread count.
template <typename T>
void conv_backward_weight(const ConvGeometry& g, const T* x, const T* gy, T* gw);

// While alive, convolutions that convert `data` (a contiguous [N, ...] float array of
// `bytes`) or a batch slice of it into oneDNN's blocked layout share one converted copy:
// conv backward opens one over gy for its data and weight gradients, which would each
// reorder it (the weight gradient once per batch chunk). The array must not change
// meanwhile.
class SharedConvInput {
 public:
  SharedConvInput(const void* data, size_t bytes);
  ~SharedConvInput();
  SharedConvInput(const SharedConvInput&) = delete;
  SharedConvInput& operator=(const SharedConvInput&) = delete;

 private:
  void* entry_ = nullptr;
};

// A 1-d linear map from `in_size` inputs to `offset.size() - 1` outputs: output o is
// sum over k in [offset[o], offset[o+1]) of weight[k] * input[index[k]].
struct Taps {
  std::vector<int64_t> offset{0};
  std::vector<int64_t> index;
  std::vector<double> weight;

  int64_t outputs() const { return static_cast<int64_t>(offset.size()) - 1; }
  void add(int64_t i, double w) {
    index.push_back(i);
    weight.push_back(w);
  }
  void end_output() { offset.push_back(static_cast<int64_t>(index.size())); }
};

// Applies rows (over H) and cols (over W) to every plane: x[planes, H, W] ->
// y[planes, rows.outputs(), cols.outputs()]. T is float or double.
template <typename T>
void separable_apply(const Taps& rows, const Taps& cols, int64_t planes, int64_t H, int64_t W,
                     const T* x, T* y);

// The adjoint (transpose) of separable_apply: gy[planes, OH, OW] -> gx[planes, H, W],
// gx overwritten. Each plane is summed in a fixed order.
template <typename T>
void separable_apply_adjoint(const Taps& rows, const Taps& cols, int64_t planes, int64_t H,
                             int64_t W, const T* gy, T* gx);

}  // namespace tessera::cpu
