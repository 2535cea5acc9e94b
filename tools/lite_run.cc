#include "lite_run.h"

#include <algorithm>
#include <cstring>

#include "tessera/lite/lite.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/shape.h"

namespace tessera::tools {

bool is_lite_model(const std::string& path) {
  return path.size() > 6 && path.compare(path.size() - 6, 6, ".tlite") == 0;
}

namespace {

Shape info_shape(const lite::TensorInfo& info) {
  Shape s;
  for (int32_t d : info.shape) s.push_back(d);
  return s;
}

}  // namespace

TensorList run_lite_model(const std::string& path, const TensorList& inputs) {
  std::unique_ptr<lite::Model> model;
  lite::Result r = lite::Model::load(path, model);
  check(r.ok(), "run", path, ": ", r.message);
  lite::Interpreter interpreter(*model);
  r = interpreter.allocate();
  check(r.ok(), "run", path, ": ", r.message);
  check(inputs.size() == interpreter.num_inputs(), "run", "the lite model takes ",
        interpreter.num_inputs(), " inputs, got ", inputs.size());
  // How many model batches the inputs hold.
  int64_t runs = -1;
  TensorList dense;
  for (size_t i = 0; i < inputs.size(); ++i) {
    lite::TensorInfo info = interpreter.input(i);
    Shape want = info_shape(info);
    const Tensor& x = inputs[i];
    check(info.dtype == lite::DType::float32 && x.dtype() == DType::Float32, "run", "lite input ",
          i, " must be float32 here");
    bool batched = !want.empty() && x.dim() == static_cast<int64_t>(want.size()) && want[0] > 0 &&
                   x.shape()[0] % want[0] == 0 &&
                   std::equal(want.begin() + 1, want.end(), x.shape().begin() + 1);
    check(batched, "run", "input ", i, " has shape ", x.shape(),
          "; the lite model takes batches of ", want);
    int64_t k = x.shape()[0] / want[0];
    check(runs < 0 || runs == k, "run", "the inputs hold different numbers of batches");
    runs = k;
    dense.push_back(x.contiguous());
  }
  check(runs > 0, "run", "the inputs hold no examples");
  std::vector<TensorList> pieces(interpreter.num_outputs());
  for (int64_t k = 0; k < runs; ++k) {
    for (size_t i = 0; i < inputs.size(); ++i) {
      size_t bytes = interpreter.input(i).bytes;
      const char* src = static_cast<const char*>(dense[i].data_ptr()) + k * bytes;
      r = interpreter.set_input(i, src, bytes);
      check(r.ok(), "run", r.message);
    }
    r = interpreter.invoke();
    check(r.ok(), "run", r.message);
    for (size_t o = 0; o < interpreter.num_outputs(); ++o) {
      lite::TensorInfo info = interpreter.output(o);
      check(info.dtype == lite::DType::float32, "run", "lite output ", o,
            " is not float32; only float outputs are written here");
      Tensor t = Tensor::empty(info_shape(info), DType::Float32);
      std::memcpy(t.data_ptr(), interpreter.output_data(o), info.bytes);
      pieces[o].push_back(t);
    }
  }
  TensorList outputs;
  for (const TensorList& p : pieces) outputs.push_back(p.size() == 1 ? p[0] : concat(p, 0));
  return outputs;
}

}  // namespace tessera::tools
