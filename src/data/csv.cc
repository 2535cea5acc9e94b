// CSV reader: the whole file is parsed up front into one tensor per column, so errors
// surface when the dataset is made and the dataset knows its length.
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <string_view>

#include "internal.h"
#include "tessera/core/error.h"
#include "tessera/data/readers.h"
#include "tessera/ops/creation.h"

namespace tessera::data {
namespace {

constexpr const char* kOp = "read_csv";

struct Line {
  std::string_view text;
  int64_t number;  // 1-based
  size_t offset;   // byte offset of its first character
};

// Where an error happened, for messages.
std::string where(const std::string& path, const Line& line) {
  return path + ": line " + std::to_string(line.number) + " (byte offset " +
         std::to_string(line.offset) + ")";
}

std::string shorten(std::string_view s) {
  return s.size() <= 40 ? std::string(s) : std::string(s.substr(0, 37)) + "...";
}

// Splits a line into fields; quoted fields may hold the delimiter and "" for a quote.
std::vector<std::string> split_fields(const Line& line, char delim, const std::string& path) {
  std::vector<std::string> fields;
  std::string_view s = line.text;
  size_t i = 0;
  for (;;) {
    std::string field;
    // Leading blanks before an opening quote are allowed.
    size_t j = i;
    while (j < s.size() && (s[j] == ' ' || s[j] == '\t') && s[j] != delim) ++j;
    if (j < s.size() && s[j] == '"') {
      size_t k = j + 1;
      for (;;) {
        check(k < s.size(), kOp, where(path, line), ": unterminated quote starting at column ",
              j + 1);
        if (s[k] == '"') {
          if (k + 1 < s.size() && s[k + 1] == '"') {
            field += '"';
            k += 2;
            continue;
          }
          ++k;
          break;
        }
        field += s[k++];
      }
      while (k < s.size() && (s[k] == ' ' || s[k] == '\t') && s[k] != delim) ++k;
      check(k == s.size() || s[k] == delim, kOp, where(path, line),
            ": unexpected character after a closing quote at column ", k + 1);
      i = k;
    } else {
      size_t k = s.find(delim, i);
      if (k == std::string_view::npos) k = s.size();
      field.assign(s.substr(i, k - i));
      i = k;
    }
    fields.push_back(std::move(field));
    if (i >= s.size()) break;
    ++i;  // the delimiter
    if (i == s.size()) {
      fields.emplace_back();  // a trailing delimiter ends with an empty field
      break;
    }
  }
  return fields;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Integer range of an integral dtype.
void int_range(DType t, int64_t* lo, int64_t* hi) {
  switch (t) {
    case DType::UInt8:
      *lo = 0, *hi = 255;
      return;
    case DType::Int8:
      *lo = -128, *hi = 127;
      return;
    case DType::Int32:
      *lo = std::numeric_limits<int32_t>::min(), *hi = std::numeric_limits<int32_t>::max();
      return;
    default:
      *lo = std::numeric_limits<int64_t>::min(), *hi = std::numeric_limits<int64_t>::max();
  }
}

struct Column {
  std::string name;
  size_t source;  // field index in the file
  DType dtype;
  std::vector<double> floats;
  std::vector<int64_t> ints;  // integers and bools
};

void parse_value(Column& col, std::string_view raw, const Line& line, const std::string& path) {
  std::string_view v = trim(raw);
  auto bad = [&](const char* why) {
    fail(kOp, where(path, line), ", column '", col.name, "': cannot parse '", shorten(raw), "' as ",
         dtype_name(col.dtype), why);
  };
  if (is_floating(col.dtype)) {
    if (v.empty()) {
      col.floats.push_back(std::numeric_limits<double>::quiet_NaN());
      return;
    }
    if (v.front() == '+') v.remove_prefix(1);
    double x = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    if (ec == std::errc::result_out_of_range) bad(" (out of range)");
    if (ec != std::errc() || end != v.data() + v.size()) bad("");
    col.floats.push_back(x);
    return;
  }
  if (col.dtype == DType::Bool) {
    std::string lower;
    for (char c : v) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "1" || lower == "true") {
      col.ints.push_back(1);
    } else if (lower == "0" || lower == "false") {
      col.ints.push_back(0);
    } else {
      bad(" (expected 0, 1, true or false)");
    }
    return;
  }
  if (v.empty()) bad(" (empty field)");
  if (v.front() == '+') v.remove_prefix(1);
  int64_t x = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec == std::errc::result_out_of_range) bad(" (out of range)");
  if (ec != std::errc() || end != v.data() + v.size()) bad("");
  int64_t lo, hi;
  int_range(col.dtype, &lo, &hi);
  if (x < lo || x > hi) bad(" (out of range)");
  col.ints.push_back(x);
}

}  // namespace

CsvTable read_csv(const std::string& path, const CsvOptions& options) {
  check(options.select_columns.empty() || options.select_indices.empty(), kOp,
        "give select_columns or select_indices, not both");
  check(options.select_columns.empty() || options.header, kOp,
        "select_columns needs a header; use select_indices");
  check(options.delimiter != '"' && options.delimiter != '\n' && options.delimiter != '\r', kOp,
        "invalid delimiter");
  std::vector<unsigned char> bytes = detail::read_file_bytes(path, kOp);
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());

  std::vector<std::string> header;
  std::vector<Column> columns;
  size_t num_fields = 0;
  bool configured = false;

  // Chooses the output columns once the number of fields is known.
  auto configure = [&](const Line& line) {
    std::vector<size_t> picks;
    if (!options.select_columns.empty()) {
      for (const std::string& name : options.select_columns) {
        size_t k = 0;
        while (k < header.size() && header[k] != name) ++k;
        if (k == header.size()) {
          std::string names;
          for (const std::string& h : header) names += (names.empty() ? "" : ", ") + h;
          fail(kOp, path, ": no column named '", name, "'; the header has: ", names);
        }
        picks.push_back(k);
      }
    } else if (!options.select_indices.empty()) {
      for (int64_t k : options.select_indices) {
        check(k >= 0 && static_cast<size_t>(k) < num_fields, kOp, where(path, line),
              ": column index ", k, " is outside the ", num_fields, " fields");
        picks.push_back(static_cast<size_t>(k));
      }
    } else {
      for (size_t k = 0; k < num_fields; ++k) picks.push_back(k);
    }
    check(options.column_dtypes.empty() || options.column_dtypes.size() == picks.size(), kOp, path,
          ": ", options.column_dtypes.size(), " column dtypes given for ", picks.size(),
          " columns");
    for (size_t j = 0; j < picks.size(); ++j) {
      Column col;
      col.source = picks[j];
      col.name = header.empty() ? std::to_string(picks[j]) : header[picks[j]];
      col.dtype = options.column_dtypes.empty() ? DType::Float32 : options.column_dtypes[j];
      columns.push_back(std::move(col));
    }
    configured = true;
  };

  size_t pos = 0;
  int64_t number = 0;
  int64_t rows = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    Line line{text.substr(pos, end - pos), ++number, pos};
    pos = end + 1;
    if (!line.text.empty() && line.text.back() == '\r') line.text.remove_suffix(1);
    if (trim(line.text).empty()) continue;
    std::vector<std::string> fields = split_fields(line, options.delimiter, path);
    if (!configured) {
      num_fields = fields.size();
      if (options.header) {
        for (std::string& f : fields) header.emplace_back(trim(f));
        configure(line);
        continue;
      }
      configure(line);
    }
    check(fields.size() == num_fields, kOp, where(path, line), ": expected ", num_fields,
          " fields, found ", fields.size());
    for (Column& col : columns) parse_value(col, fields[col.source], line, path);
    ++rows;
  }
  check(configured || !options.header, kOp, path, ": the file is empty, expected a header line");
  if (!configured) {
    // No lines at all: only explicitly chosen columns exist, with no rows.
    for (size_t j = 0; j < options.select_indices.size(); ++j) {
      Column col;
      col.name = std::to_string(options.select_indices[j]);
      col.dtype = j < options.column_dtypes.size() ? options.column_dtypes[j] : DType::Float32;
      columns.push_back(std::move(col));
    }
  }

  CsvTable table;
  for (Column& col : columns) {
    table.names.push_back(col.name);
    Tensor t =
        is_floating(col.dtype) ? from_vector(col.floats, {rows}) : from_vector(col.ints, {rows});
    table.columns.push_back(t.to(col.dtype));
  }
  return table;
}

Dataset csv_dataset(const std::string& path, const CsvOptions& options) {
  CsvTable table = read_csv(path, options);
  check(!table.columns.empty(), "csv_dataset", path, ": no columns to read");
  return Dataset::from_tensors(std::move(table.columns));
}

}  // namespace tessera::data
