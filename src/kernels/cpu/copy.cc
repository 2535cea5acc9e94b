#include "copy.h"

#include <algorithm>
#include <cstring>

#include "loops.h"

namespace tessera::cpu {

void copy_into(const Tensor& src, const Tensor& dst) {
  if (dst.numel() == 0) return;
  Geometry<2> g =
      make_geometry<2>(dst.shape(), {dst.strides(), broadcast_strides(src, dst.shape())});
  std::array<int64_t, 2> sizes{static_cast<int64_t>(dst.element_size()),
                               static_cast<int64_t>(src.element_size())};
  std::array<char*, 2> base{static_cast<char*>(dst.data_ptr()), static_cast<char*>(src.data_ptr())};
  visit_dtype(dst.dtype(), [&](auto to_tag) {
    using To = decltype(to_tag);
    visit_dtype(src.dtype(), [&](auto from_tag) {
      using From = decltype(from_tag);
      parallel_runs<2>(g, base, sizes,
                       [](std::array<char*, 2> p, int64_t n, const std::array<int64_t, 2>& st) {
                         if constexpr (std::is_same_v<To, From>) {
                           if (st[0] == sizeof(To) && st[1] == sizeof(From)) {
                             std::memcpy(p[0], p[1], n * sizeof(To));
                             return;
                           }
                         }
                         if (st[1] == 0) {  // a broadcast source: one value, converted once
                           From v;
                           std::memcpy(&v, p[1], sizeof(From));
                           To w = convert<To>(v);
                           if (st[0] == sizeof(To)) {
                             std::fill_n(reinterpret_cast<To*>(p[0]), n, w);
                           } else {
                             for (int64_t i = 0; i < n; ++i)
                               std::memcpy(p[0] + i * st[0], &w, sizeof(To));
                           }
                           return;
                         }
                         for (int64_t i = 0; i < n; ++i) {
                           From v;
                           std::memcpy(&v, p[1] + i * st[1], sizeof(From));
                           To w = convert<To>(v);
                           std::memcpy(p[0] + i * st[0], &w, sizeof(To));
                         }
                       });
    });
  });
}

}  // namespace tessera::cpu
