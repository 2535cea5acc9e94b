// ONNX operators whose output sizes depend on their inputs' values (NonMaxSuppression,
// Unique): Tessera's graphs have static shapes, so their inputs must be known at import
// time and the results enter the graph as constants.
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "converter.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/index.h"
#include "tessera/ops/shape.h"

namespace tessera::onnx {
namespace {

struct Box {
  double y1, x1, y2, x2;
};

Box corners(const double* b, bool center_point) {
  if (center_point) {  // [x_center, y_center, width, height]
    return {b[1] - b[3] / 2, b[0] - b[2] / 2, b[1] + b[3] / 2, b[0] + b[2] / 2};
  }
  return {std::min(b[0], b[2]), std::min(b[1], b[3]), std::max(b[0], b[2]), std::max(b[1], b[3])};
}

double iou(const Box& a, const Box& b) {
  double h = std::min(a.y2, b.y2) - std::max(a.y1, b.y1),
         w = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
  if (h <= 0 || w <= 0) return 0;
  double inter = h * w;
  double total = (a.y2 - a.y1) * (a.x2 - a.x1) + (b.y2 - b.y1) * (b.x2 - b.x1) - inter;
  return total > 0 ? inter / total : 0;
}

TensorList non_max_suppression_op(const NodeContext& c) {
  Tensor boxes_t = c.value(0), scores_t = c.value(1);
  c.require(boxes_t.dim() == 3 && boxes_t.size(2) == 4 && scores_t.dim() == 3 &&
                scores_t.size(0) == boxes_t.size(0) && scores_t.size(2) == boxes_t.size(1),
            "boxes ", boxes_t.shape(), " and scores ", scores_t.shape(), " do not match");
  int64_t max_out = c.has(2) && c.value(2).numel() > 0 ? static_cast<int64_t>(c.scalar(2)) : 0;
  double iou_threshold = c.has(3) && c.value(3).numel() > 0 ? c.scalar(3) : 0.0;
  bool has_score_threshold = c.has(4) && c.value(4).numel() > 0;
  double score_threshold = has_score_threshold ? c.scalar(4) : 0.0;
  bool center = c.attr_i("center_point_box", 0) != 0;
  std::vector<double> boxes = boxes_t.to_vector<double>(), scores = scores_t.to_vector<double>();
  const int64_t batches = boxes_t.size(0), classes = scores_t.size(1), n = boxes_t.size(1);
  std::vector<int64_t> selected;
  for (int64_t b = 0; b < batches; ++b) {
    for (int64_t k = 0; k < classes; ++k) {
      const double* s = scores.data() + (b * classes + k) * n;
      std::vector<int64_t> order;
      for (int64_t i = 0; i < n; ++i) {
        if (!has_score_threshold || s[i] > score_threshold) order.push_back(i);
      }
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t x, int64_t y) { return s[x] > s[y]; });
      std::vector<Box> kept;
      for (int64_t i : order) {
        if (static_cast<int64_t>(kept.size()) >= max_out) break;
        Box box = corners(boxes.data() + (b * n + i) * 4, center);
        bool suppressed = false;
        for (const Box& other : kept) suppressed = suppressed || iou(box, other) > iou_threshold;
        if (suppressed) continue;
        kept.push_back(box);
        selected.insert(selected.end(), {b, k, i});
      }
    }
  }
  auto count = static_cast<int64_t>(selected.size() / 3);
  return {from_vector<int64_t>(selected, {count, 3})};
}

TensorList unique_op(const NodeContext& c) {
  Tensor x = c.value(0);
  bool sorted = c.attr_i("sorted", 1) != 0;
  int64_t axis = 0;
  if (c.has_attr("axis")) {
    axis = c.axis(c.attr_i("axis", 0), x.dim());
  } else {
    x = flatten(x);
  }
  // Each slice along the axis as a row of values.
  Dims order{axis};
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d != axis) order.push_back(d);
  }
  Tensor moved = contiguous(permute(x, order));
  const int64_t rows = moved.size(0);
  const int64_t width = rows == 0 ? 0 : moved.numel() / rows;
  std::vector<double> v = moved.to_vector<double>();
  auto row = [&](int64_t i) {
    return std::vector<double>(v.begin() + i * width, v.begin() + (i + 1) * width);
  };
  std::map<std::vector<double>, int64_t> first_of;  // row -> first index
  std::vector<int64_t> firsts;
  for (int64_t i = 0; i < rows; ++i) {
    if (first_of.emplace(row(i), i).second) firsts.push_back(i);
  }
  if (sorted) {
    firsts.clear();
    for (const auto& [key, i] : first_of) firsts.push_back(i);
  }
  std::map<std::vector<double>, int64_t> position;
  for (size_t k = 0; k < firsts.size(); ++k) position[row(firsts[k])] = static_cast<int64_t>(k);
  std::vector<int64_t> inverse(static_cast<size_t>(rows)), counts(firsts.size(), 0);
  for (int64_t i = 0; i < rows; ++i) {
    inverse[static_cast<size_t>(i)] = position[row(i)];
    ++counts[static_cast<size_t>(inverse[static_cast<size_t>(i)])];
  }
  auto k = static_cast<int64_t>(firsts.size());
  Tensor indices = from_vector<int64_t>(firsts, {k});
  Tensor y = index_select(x, axis, indices);
  return {y, indices, from_vector<int64_t>(inverse, {rows}), from_vector<int64_t>(counts, {k})};
}

// The determinant of each [M, M] matrix by Gaussian elimination with partial pivoting
// (Tessera has no LU op yet, so the input must be known at import).
TensorList det_op(const NodeContext& c) {
  Tensor x = c.value(0);
  c.require(x.dim() >= 2 && x.size(-1) == x.size(-2), "input must be [..., M, M], got shape ",
            x.shape());
  const int64_t m = x.size(-1);
  const int64_t count = m == 0 ? 0 : x.numel() / (m * m);
  std::vector<double> v = x.to_vector<double>(), dets(static_cast<size_t>(count));
  for (int64_t b = 0; b < count; ++b) {
    double* a = v.data() + b * m * m;
    double det = 1;
    for (int64_t col = 0; col < m && det != 0; ++col) {
      int64_t pivot = col;
      for (int64_t r = col + 1; r < m; ++r) {
        if (std::fabs(a[r * m + col]) > std::fabs(a[pivot * m + col])) pivot = r;
      }
      if (a[pivot * m + col] == 0) {
        det = 0;
        break;
      }
      if (pivot != col) {
        for (int64_t k = 0; k < m; ++k) std::swap(a[col * m + k], a[pivot * m + k]);
        det = -det;
      }
      det *= a[col * m + col];
      for (int64_t r = col + 1; r < m; ++r) {
        double factor = a[r * m + col] / a[col * m + col];
        for (int64_t k = col; k < m; ++k) a[r * m + k] -= factor * a[col * m + k];
      }
    }
    dets[static_cast<size_t>(b)] = det;
  }
  Shape batch(x.shape().begin(), x.shape().end() - 2);
  return {cast(reshape(from_vector<double>(dets, {count}), batch), x.dtype())};
}

}  // namespace

void add_value_dependent_ops(OpTable& t) {
  t["NonMaxSuppression"] = {non_max_suppression_op};
  t["Unique"] = {unique_op};
  t["Det"] = {det_op};
}

}  // namespace tessera::onnx
