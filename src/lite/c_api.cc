// The C interface of the lite runtime (tessera_lite_c.h): thin wrappers that turn Results
// into status codes and a per-thread message. Nothing here throws; allocation failures
// while creating objects come back as NULL or an error status.
#include <memory>
#include <new>
#include <string>

#include "tessera/lite/lite.h"
#include "tessera/lite/tessera_lite_c.h"

using tessera::lite::Interpreter;
using tessera::lite::Model;
using tessera::lite::Result;

struct TesseraLiteModel {
  std::unique_ptr<Model> model;
};
struct TesseraLiteInterpreter {
  std::unique_ptr<Interpreter> interpreter;
};

namespace {

thread_local std::string g_last_error;

TesseraLiteStatus report(const Result& r) {
  g_last_error = r.message;
  return static_cast<TesseraLiteStatus>(r.status);
}

TesseraLiteStatus bad_argument(const char* message) {
  g_last_error = message;
  return TESSERA_LITE_INVALID_ARGUMENT;
}

TesseraLiteStatus info(const tessera::lite::TensorInfo& t, TesseraLiteTensorInfo* out) {
  if (!out) return bad_argument("info: no output struct");
  if (t.bytes == 0 && t.shape.empty() && t.name.empty()) return bad_argument("info: bad index");
  *out = {t.name.data(),  t.name.size(),  static_cast<TesseraLiteDType>(t.dtype),
          t.shape.data(), t.shape.size(), t.bytes,
          t.scale,        t.zero_point};
  return TESSERA_LITE_OK;
}

}  // namespace

extern "C" {

const char* tessera_lite_last_error(void) { return g_last_error.c_str(); }

TesseraLiteStatus tessera_lite_model_load(const char* path, TesseraLiteModel** model) {
  if (!path || !model) return bad_argument("model_load: path and model are required");
  auto* out = new (std::nothrow) TesseraLiteModel;
  if (!out) return bad_argument("model_load: out of memory");
  Result r = Model::load(path, out->model);
  if (!r.ok()) {
    delete out;
    return report(r);
  }
  *model = out;
  return TESSERA_LITE_OK;
}

TesseraLiteStatus tessera_lite_model_from_buffer(const void* data, size_t size,
                                                 TesseraLiteModel** model) {
  if (!model) return bad_argument("model_from_buffer: model is required");
  auto* out = new (std::nothrow) TesseraLiteModel;
  if (!out) return bad_argument("model_from_buffer: out of memory");
  Result r = Model::from_buffer(data, size, out->model);
  if (!r.ok()) {
    delete out;
    return report(r);
  }
  *model = out;
  return TESSERA_LITE_OK;
}

void tessera_lite_model_delete(TesseraLiteModel* model) { delete model; }

TesseraLiteInterpreter* tessera_lite_interpreter_create(const TesseraLiteModel* model) {
  if (!model || !model->model) return nullptr;
  auto* out = new (std::nothrow) TesseraLiteInterpreter;
  if (out) out->interpreter = std::make_unique<Interpreter>(*model->model);
  return out;
}

void tessera_lite_interpreter_delete(TesseraLiteInterpreter* interpreter) { delete interpreter; }

TesseraLiteStatus tessera_lite_interpreter_allocate(TesseraLiteInterpreter* it, void* arena,
                                                    size_t arena_bytes) {
  if (!it) return bad_argument("allocate: no interpreter");
  return report(it->interpreter->allocate(arena, arena_bytes));
}

size_t tessera_lite_interpreter_arena_bytes(const TesseraLiteInterpreter* it) {
  return it ? it->interpreter->arena_bytes() : 0;
}
size_t tessera_lite_interpreter_num_inputs(const TesseraLiteInterpreter* it) {
  return it ? it->interpreter->num_inputs() : 0;
}
size_t tessera_lite_interpreter_num_outputs(const TesseraLiteInterpreter* it) {
  return it ? it->interpreter->num_outputs() : 0;
}

TesseraLiteStatus tessera_lite_interpreter_input_info(const TesseraLiteInterpreter* it,
                                                      size_t index, TesseraLiteTensorInfo* out) {
  if (!it || index >= it->interpreter->num_inputs()) return bad_argument("input_info: bad index");
  return info(it->interpreter->input(index), out);
}

TesseraLiteStatus tessera_lite_interpreter_output_info(const TesseraLiteInterpreter* it,
                                                       size_t index, TesseraLiteTensorInfo* out) {
  if (!it || index >= it->interpreter->num_outputs()) {
    return bad_argument("output_info: bad index");
  }
  return info(it->interpreter->output(index), out);
}

TesseraLiteStatus tessera_lite_interpreter_set_input(TesseraLiteInterpreter* it, size_t index,
                                                     const void* data, size_t bytes) {
  if (!it) return bad_argument("set_input: no interpreter");
  return report(it->interpreter->set_input(index, data, bytes));
}

void* tessera_lite_interpreter_input_data(TesseraLiteInterpreter* it, size_t index) {
  return it ? it->interpreter->input_data(index) : nullptr;
}

const void* tessera_lite_interpreter_output_data(const TesseraLiteInterpreter* it, size_t index) {
  return it ? it->interpreter->output_data(index) : nullptr;
}

TesseraLiteStatus tessera_lite_interpreter_invoke(TesseraLiteInterpreter* it) {
  if (!it) return bad_argument("invoke: no interpreter");
  Result r = it->interpreter->invoke();
  return r.ok() ? TESSERA_LITE_OK : report(r);
}

}  // extern "C"
