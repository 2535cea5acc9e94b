// File sources for datasets: MNIST-style IDX files, CSV tables, folders of images (one
// sub-folder per class) and text lines. Malformed files raise tessera::Error naming the
// file and where in it (byte offset or line).
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tessera/core/tensor.h"
#include "tessera/data/dataset.h"

namespace tessera::data {

// ---- IDX (MNIST's format) ----
// Reads one IDX file, plain or gzip-compressed (detected by its first bytes). Element types:
// 0x08 uint8, 0x09 int8, 0x0B int16 (returned as int32), 0x0C int32, 0x0D float32,
// 0x0E float64. Offsets in errors count bytes of the decompressed content.
Tensor read_idx(const std::string& path);

struct IdxDatasetOptions {
  bool scale_images = true;      // uint8 images become float32 in [0, 1] (others: float32 as is)
  bool add_channel_axis = true;  // [N, H, W] images become [N, 1, H, W]
  DType label_dtype = DType::Int64;
};
// {images, labels} as read (and converted) from an IDX image file and an IDX label file
// with the same count.
TensorList read_idx_pair(const std::string& images_path, const std::string& labels_path,
                         const IdxDatasetOptions& options = {});
// Elements {image, label}: from_tensors over read_idx_pair.
Dataset idx_dataset(const std::string& images_path, const std::string& labels_path,
                    const IdxDatasetOptions& options = {});

// ---- CSV ----
struct CsvOptions {
  bool header = true;  // the first line names the columns
  char delimiter = ',';
  // One dtype per output column (after selection); empty: all float32. Float columns read
  // an empty field as NaN; integer and bool columns reject it.
  std::vector<DType> column_dtypes = {};
  std::vector<std::string> select_columns = {};  // by header name, in this order; empty: all
  std::vector<int64_t> select_indices = {};      // by position (0-based), when there is no header
};

struct CsvTable {
  std::vector<std::string> names;  // header names of the output columns ("0", "1"... without)
  TensorList columns;              // one 1-d tensor per output column, one entry per row
};

// Parses the whole file. Fields may be double-quoted ("" inside quotes is a quote; quoted
// fields cannot span lines); blank lines are skipped; \r\n line ends are accepted.
CsvTable read_csv(const std::string& path, const CsvOptions& options = {});
// One element per row: a 0-d tensor per output column.
Dataset csv_dataset(const std::string& path, const CsvOptions& options = {});

// ---- image folders ----
struct ImageFolderOptions {
  int channels = 0;  // 1, 2, 3 or 4 converts every image; 0 keeps each file's own
  std::optional<std::pair<int64_t, int64_t>> size = {};  // (height, width) to resize to
  bool to_float = false;                                 // float32 in [0, 1] instead of uint8
  bool channels_first = false;  // [C, H, W] (what augment.h expects) instead of [H, W, C]
  int num_workers = 0;          // decoding threads (map workers); 0 decodes inline
  // Lower-case file extensions to load (matched case-insensitively).
  std::vector<std::string> extensions = {".png", ".jpg", ".jpeg", ".bmp",
                                         ".gif", ".tga", ".ppm",  ".pgm"};
};

struct ImageFolderIndex {
  std::vector<std::string> class_names;  // sorted sub-folder names; label i is class_names[i]
  std::vector<std::string> files;        // sorted by class, then by file name
  std::vector<int64_t> labels;
};

// Lists root/<class>/<image> (hidden entries skipped).
ImageFolderIndex list_image_folder(const std::string& root, const ImageFolderOptions& options = {});
// Decodes one image (stb_image) with the options' channels, size, dtype and layout.
Tensor read_image(const std::string& path, const ImageFolderOptions& options = {});
// Elements {image, label (int64 0-d)} in list_image_folder's order, decoded lazily.
Dataset image_folder(const std::string& root, const ImageFolderOptions& options = {});

// ---- text ----
// One element per line: {uint8 1-d tensor of the line's bytes} (Tensor has no string dtype).
// The line end (\n or \r\n) is dropped. Lines are read lazily; cardinality is unknown.
Dataset text_lines(const std::string& path);
// Conversions between the byte tensors of text_lines and strings.
std::string bytes_to_string(const Tensor& bytes);
Tensor string_to_bytes(std::string_view text);

}  // namespace tessera::data
