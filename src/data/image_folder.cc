// Image folders: root/<class>/<file>, classes numbered in sorted name order, files decoded
// with stb_image (Debian's libstb holds the implementation) when elements are drawn.
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <memory>

#include "internal.h"
#include "tessera/core/error.h"
#include "tessera/data/readers.h"

namespace tessera::data {
namespace {

namespace fs = std::filesystem;

bool hidden(const fs::path& p) {
  std::string name = p.filename().string();
  return name.empty() || name[0] == '.';
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

ImageFolderIndex list_image_folder(const std::string& root, const ImageFolderOptions& options) {
  constexpr const char* op = "image_folder";
  std::error_code ec;
  check(fs::is_directory(root, ec), op, root, ": not a directory");
  ImageFolderIndex index;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    if (!hidden(e.path()) && e.is_directory())
      index.class_names.push_back(e.path().filename().string());
  }
  check(!ec, op, root, ": cannot list: ", ec.message());
  std::sort(index.class_names.begin(), index.class_names.end());
  check(!index.class_names.empty(), op, root, ": no class sub-folders");
  for (size_t label = 0; label < index.class_names.size(); ++label) {
    fs::path dir = fs::path(root) / index.class_names[label];
    std::vector<std::string> files;
    for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
      if (hidden(e.path()) || !e.is_regular_file()) continue;
      std::string ext = lower(e.path().extension().string());
      if (std::find(options.extensions.begin(), options.extensions.end(), ext) !=
          options.extensions.end()) {
        files.push_back(e.path().string());
      }
    }
    check(!ec, op, dir.string(), ": cannot list: ", ec.message());
    std::sort(files.begin(), files.end());
    for (std::string& f : files) {
      index.files.push_back(std::move(f));
      index.labels.push_back(static_cast<int64_t>(label));
    }
  }
  return index;
}

Tensor read_image(const std::string& path, const ImageFolderOptions& options) {
  constexpr const char* op = "read_image";
  check(options.channels >= 0 && options.channels <= 4, op, "channels must be 0 to 4, got ",
        options.channels);
  int width = 0, height = 0, stored = 0;
  std::unique_ptr<unsigned char, void (*)(void*)> pixels(
      stbi_load(path.c_str(), &width, &height, &stored, options.channels), &stbi_image_free);
  check(pixels != nullptr, op, path, ": cannot decode: ", stbi_failure_reason());
  int channels = options.channels ? options.channels : stored;
  const unsigned char* src = pixels.get();
  std::vector<unsigned char> resized;
  if (options.size && (options.size->first != height || options.size->second != width)) {
    auto [h, w] = *options.size;
    check(h > 0 && w > 0 && h <= (1 << 15) && w <= (1 << 15), op, "invalid size (", h, ", ", w,
          ")");
    resized.resize(static_cast<size_t>(h * w * channels));
    check(stbir_resize_uint8(src, width, height, 0, resized.data(), static_cast<int>(w),
                             static_cast<int>(h), 0, channels) == 1,
          op, path, ": resize failed");
    src = resized.data();
    height = static_cast<int>(h);
    width = static_cast<int>(w);
  }
  int64_t h = height, w = width, c = channels, hw = h * w;
  Shape shape = options.channels_first ? Shape{c, h, w} : Shape{h, w, c};
  Tensor out = Tensor::empty(shape, options.to_float ? DType::Float32 : DType::UInt8);
  // Element k of the HWC source goes to (k % c) * hw + k / c in CHW.
  auto dest = [&](int64_t k) { return options.channels_first ? (k % c) * hw + k / c : k; };
  if (options.to_float) {
    float* dst = out.data<float>();
    for (int64_t k = 0; k < hw * c; ++k) dst[dest(k)] = static_cast<float>(src[k]) / 255.0f;
  } else if (!options.channels_first) {
    std::memcpy(out.data_ptr(), src, static_cast<size_t>(hw * c));
  } else {
    uint8_t* dst = out.data<uint8_t>();
    for (int64_t k = 0; k < hw * c; ++k) dst[dest(k)] = src[k];
  }
  return out;
}

Dataset image_folder(const std::string& root, const ImageFolderOptions& options) {
  auto index = std::make_shared<const ImageFolderIndex>(list_image_folder(root, options));
  int64_t n = static_cast<int64_t>(index->files.size());
  return Dataset::range(n).map(
      [index, options](Example e) {
        int64_t i = e[0].item<int64_t>();
        return Example{read_image(index->files[i], options),
                       detail::int64_scalar(index->labels[i])};
      },
      options.num_workers);
}

}  // namespace tessera::data
