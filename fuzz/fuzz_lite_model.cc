// libFuzzer target for the lite runtime's loader: any bytes must load as an error or as a
// model that allocates and runs without touching memory outside its buffers (ASan and
// UBSan watch). Run by scripts/fuzz.sh, seeded from tests/corpus/lite.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "model.h"  // src/lite: the checked model, to bound what a run may allocate
#include "tessera/lite/lite.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tessera::lite;
  // 64-byte aligned, as a mapped file is.
  std::unique_ptr<uint8_t, decltype(&std::free)> copy(
      static_cast<uint8_t*>(std::aligned_alloc(64, (size + 64) / 64 * 64)), &std::free);
  if (size) std::memcpy(copy.get(), data, size);
  std::unique_ptr<Model> model;
  if (!Model::from_buffer(copy.get(), size, model).ok()) return 0;
  // Legitimately huge models are not bugs: run only those whose activations fit 64 MiB.
  size_t activations = 0;
  for (const TensorDesc& t : model->data().tensors) activations += t.constant ? 0 : t.bytes;
  if (activations > (size_t{64} << 20)) return 0;
  Interpreter interpreter(*model);
  if (interpreter.allocate().ok()) interpreter.invoke();
  return 0;
}
