/* The lite runtime from C: runs the committed valid model through the C interface
 * (checking its softmax output sums to 1) and the error paths. Written in C, linked to
 * the shared tessera_lite, so it checks both the C header and the exported symbols.
 * Usage: test_lite_c CORPUS_DIR */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/lite/tessera_lite_c.h"

static int failures = 0;
#define EXPECT(cond)                                                      \
  do {                                                                    \
    if (!(cond)) {                                                        \
      fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                         \
    }                                                                     \
  } while (0)

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_lite_c CORPUS_DIR\n");
    return 2;
  }
  char path[4096];
  TesseraLiteModel* model = NULL;

  snprintf(path, sizeof path, "%s/no_such_file.tlite", argv[1]);
  EXPECT(tessera_lite_model_load(path, &model) == TESSERA_LITE_IO_ERROR);
  EXPECT(strstr(tessera_lite_last_error(), "no_such_file") != NULL);
  snprintf(path, sizeof path, "%s/negative_dim.tlite", argv[1]);
  EXPECT(tessera_lite_model_load(path, &model) == TESSERA_LITE_INVALID_MODEL);
  EXPECT(strstr(tessera_lite_last_error(), "negative dimension") != NULL);
  EXPECT(model == NULL);

  snprintf(path, sizeof path, "%s/valid_small.tlite", argv[1]);
  if (tessera_lite_model_load(path, &model) != TESSERA_LITE_OK) {
    fprintf(stderr, "load failed: %s\n", tessera_lite_last_error());
    return 1;
  }
  TesseraLiteInterpreter* it = tessera_lite_interpreter_create(model);
  EXPECT(it != NULL);
  EXPECT(tessera_lite_interpreter_invoke(it) == TESSERA_LITE_NOT_ALLOCATED);
  EXPECT(tessera_lite_interpreter_allocate(it, NULL, 0) == TESSERA_LITE_OK);
  EXPECT(tessera_lite_interpreter_arena_bytes(it) > 0);
  EXPECT(tessera_lite_interpreter_num_inputs(it) == 1);
  EXPECT(tessera_lite_interpreter_num_outputs(it) == 1);

  TesseraLiteTensorInfo in, out;
  EXPECT(tessera_lite_interpreter_input_info(it, 0, &in) == TESSERA_LITE_OK);
  EXPECT(tessera_lite_interpreter_input_info(it, 5, &in) == TESSERA_LITE_INVALID_ARGUMENT);
  EXPECT(tessera_lite_interpreter_output_info(it, 0, &out) == TESSERA_LITE_OK);
  EXPECT(in.dtype == TESSERA_LITE_FLOAT32 && in.rank == 4 && in.bytes == 36 * sizeof(float));

  float image[36];
  for (int i = 0; i < 36; ++i) image[i] = (float)(i % 7) / 7.0f;
  EXPECT(tessera_lite_interpreter_set_input(it, 0, image, sizeof image - 1) ==
         TESSERA_LITE_INVALID_ARGUMENT);
  EXPECT(tessera_lite_interpreter_set_input(it, 0, image, sizeof image) == TESSERA_LITE_OK);
  EXPECT(tessera_lite_interpreter_invoke(it) == TESSERA_LITE_OK);
  const float* p = (const float*)tessera_lite_interpreter_output_data(it, 0);
  float total = 0;
  for (size_t i = 0; i < out.bytes / sizeof(float); ++i) total += p[i];
  EXPECT(fabsf(total - 1.0f) < 1e-5f); /* the model ends in a softmax */

  tessera_lite_interpreter_delete(it);
  tessera_lite_model_delete(model);
  if (failures == 0) printf("test_lite_c: all checks passed\n");
  return failures ? 1 : 0;
}
