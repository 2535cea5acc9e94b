# The lite runtime stands alone: the C++ standard library and flatbuffers' headers only, so
# it builds for phones without the training library. Its loops are built with -O3, without
# errno and with OpenMP's simd pragmas (no OpenMP runtime), so that they vectorize.
file(GLOB_RECURSE TESSERA_LITE_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/lite/*.cc)
add_library(tessera_lite_objects OBJECT ${TESSERA_LITE_SOURCES})
add_dependencies(tessera_lite_objects tessera_schemas)
target_include_directories(tessera_lite_objects PUBLIC
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>)
target_include_directories(tessera_lite_objects PRIVATE ${TESSERA_GENERATED_DIR}
                           ${FLATBUFFERS_INCLUDE_DIR})
target_compile_options(tessera_lite_objects PRIVATE -O3 -fno-math-errno -fopenmp-simd
                       -fvisibility=hidden -fvisibility-inlines-hidden -ffunction-sections
                       -fdata-sections)
# Loading, checking and planning run once per model: built for size, not speed.
set(TESSERA_LITE_DIR ${PROJECT_SOURCE_DIR}/src/lite)
set_source_files_properties(${TESSERA_LITE_DIR}/model.cc ${TESSERA_LITE_DIR}/interpreter.cc
                            ${TESSERA_LITE_DIR}/c_api.cc ${TESSERA_LITE_DIR}/kernels/kernels.cc
                            PROPERTIES COMPILE_OPTIONS "-Os")
# Shape ops (copies, and loops that carry simd pragmas): -O2, for size.
set_source_files_properties(${TESSERA_LITE_DIR}/kernels/shape.cc PROPERTIES COMPILE_OPTIONS
                            "-O2")
# Elementwise ops: -O2 with vectorized loops (the cheap cost model: a vector loop and a
# scalar tail, no unrolled copies). -O3 made them 4 KiB larger for no gain on the main
# job's input normalization (Sub and Div, 0.1 us each); plain -O2 left them scalar (0.3 and
# 0.5 us).
# (GCC's flag; clang, which builds the fuzzers, gets -O2.)
set_source_files_properties(${TESSERA_LITE_DIR}/kernels/elementwise.cc PROPERTIES COMPILE_OPTIONS
                            "-O2;$<$<CXX_COMPILER_ID:GNU>:-fvect-cost-model=cheap>")
# The register tiles: without partial-redundancy elimination, which makes GCC 12 keep the
# accumulators in memory (a store per accumulator per step; measured 2x slower), and without
# turning the window gathers' short copies and fills into library calls. GCC's flags only:
# clang builds the fuzzers.
set_source_files_properties(${TESSERA_LITE_DIR}/kernels/conv_tiles.cc PROPERTIES COMPILE_OPTIONS
                            "$<$<CXX_COMPILER_ID:GNU>:-fno-tree-pre>;$<$<CXX_COMPILER_ID:GNU>:-fno-tree-loop-distribute-patterns>")
# Quantization clamps in float before converting (infinities, NaN): without trapping math
# those compares become selects and the loop stays vectorized (0.3 us for the main job's
# input, against 2.9 us as a branchy scalar loop).
set_source_files_properties(${TESSERA_LITE_DIR}/kernels/quantize.cc PROPERTIES COMPILE_OPTIONS
                            "-fno-trapping-math")
add_library(tessera_lite SHARED $<TARGET_OBJECTS:tessera_lite_objects>)
# Only what the interface reaches: unused sections go, and gold folds identical functions
# whose address is not taken (template instances that compile to the same code); the size
# target is for the shared library, stripped.
target_link_options(tessera_lite PRIVATE -Wl,--gc-sections -fuse-ld=gold -Wl,--icf=safe)
add_library(tessera_lite_static STATIC $<TARGET_OBJECTS:tessera_lite_objects>)
foreach(lib tessera_lite tessera_lite_static)
  target_include_directories(${lib} PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>)
endforeach()
