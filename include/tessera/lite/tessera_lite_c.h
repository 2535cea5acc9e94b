/* The lite runtime from C (and any language with a C foreign-function interface).
 *
 *   TesseraLiteModel* model = NULL;
 *   if (tessera_lite_model_load("model.tlite", &model) != TESSERA_LITE_OK)
 *     fprintf(stderr, "%s\n", tessera_lite_last_error());
 *   TesseraLiteInterpreter* it = tessera_lite_interpreter_create(model);
 *   tessera_lite_interpreter_allocate(it, NULL, 0);
 *   tessera_lite_interpreter_set_input(it, 0, image, sizeof image);
 *   tessera_lite_interpreter_invoke(it);
 *   const float* logits = tessera_lite_interpreter_output_data(it, 0);
 *   tessera_lite_interpreter_delete(it);
 *   tessera_lite_model_delete(model);
 *
 * Every call returns a status; on failure tessera_lite_last_error() says why (per thread).
 * The model must outlive its interpreters. */
#ifndef TESSERA_LITE_C_H_
#define TESSERA_LITE_C_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TESSERA_LITE_C_API __attribute__((visibility("default")))

typedef enum {
  TESSERA_LITE_OK = 0,
  TESSERA_LITE_IO_ERROR,
  TESSERA_LITE_INVALID_MODEL,
  TESSERA_LITE_INVALID_ARGUMENT,
  TESSERA_LITE_UNSUPPORTED,
  TESSERA_LITE_NOT_ALLOCATED,
} TesseraLiteStatus;

typedef enum {
  TESSERA_LITE_FLOAT32 = 0,
  TESSERA_LITE_FLOAT16,
  TESSERA_LITE_INT8,
  TESSERA_LITE_UINT8,
  TESSERA_LITE_INT32,
  TESSERA_LITE_INT64,
} TesseraLiteDType;

typedef struct TesseraLiteModel TesseraLiteModel;
typedef struct TesseraLiteInterpreter TesseraLiteInterpreter;

/* A model input or output. `shape` points into the model and lives as long as it. */
typedef struct {
  const char* name; /* not NUL-terminated when name_length says so: use name_length */
  size_t name_length;
  TesseraLiteDType dtype;
  const int32_t* shape;
  size_t rank;
  size_t bytes;
  float scale; /* 0 when not quantized */
  int64_t zero_point;
} TesseraLiteTensorInfo;

/* The message of this thread's last failed call ("" when none). */
TESSERA_LITE_C_API const char* tessera_lite_last_error(void);

TESSERA_LITE_C_API TesseraLiteStatus tessera_lite_model_load(const char* path,
                                                             TesseraLiteModel** model);
/* A model in caller memory that must outlive it. */
TESSERA_LITE_C_API TesseraLiteStatus tessera_lite_model_from_buffer(const void* data, size_t size,
                                                                    TesseraLiteModel** model);
TESSERA_LITE_C_API void tessera_lite_model_delete(TesseraLiteModel* model);

TESSERA_LITE_C_API TesseraLiteInterpreter* tessera_lite_interpreter_create(
    const TesseraLiteModel* model);
TESSERA_LITE_C_API void tessera_lite_interpreter_delete(TesseraLiteInterpreter* interpreter);
/* arena: NULL for memory the interpreter owns, or caller memory (64-byte aligned). */
TESSERA_LITE_C_API TesseraLiteStatus tessera_lite_interpreter_allocate(
    TesseraLiteInterpreter* interpreter, void* arena, size_t arena_bytes);
TESSERA_LITE_C_API size_t
tessera_lite_interpreter_arena_bytes(const TesseraLiteInterpreter* interpreter);
TESSERA_LITE_C_API size_t
tessera_lite_interpreter_num_inputs(const TesseraLiteInterpreter* interpreter);
TESSERA_LITE_C_API size_t
tessera_lite_interpreter_num_outputs(const TesseraLiteInterpreter* interpreter);
TESSERA_LITE_C_API TesseraLiteStatus tessera_lite_interpreter_input_info(
    const TesseraLiteInterpreter* interpreter, size_t index, TesseraLiteTensorInfo* info);
TESSERA_LITE_C_API TesseraLiteStatus tessera_lite_interpreter_output_info(
    const TesseraLiteInterpreter* interpreter, size_t index, TesseraLiteTensorInfo* info);
TESSERA_LITE_C_API TesseraLiteStatus tessera_lite_interpreter_set_input(
    TesseraLiteInterpreter* interpreter, size_t index, const void* data, size_t bytes);
TESSERA_LITE_C_API void* tessera_lite_interpreter_input_data(TesseraLiteInterpreter* interpreter,
                                                             size_t index);
TESSERA_LITE_C_API const void* tessera_lite_interpreter_output_data(
    const TesseraLiteInterpreter* interpreter, size_t index);
TESSERA_LITE_C_API TesseraLiteStatus
tessera_lite_interpreter_invoke(TesseraLiteInterpreter* interpreter);

#ifdef __cplusplus
}
#endif

#endif /* TESSERA_LITE_C_H_ */
