// The one error type of Tessera: every op validates its inputs and throws this
// with the op's name and a readable message (shapes, dtypes, what was expected).
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace tessera {

class Error : public std::runtime_error {
 public:
  Error(std::string op, const std::string& message)
      : std::runtime_error(op.empty() ? message : op + ": " + message), op_(std::move(op)) {}
  const std::string& op() const { return op_; }

 private:
  std::string op_;
};

namespace detail {
inline void append_all(std::ostringstream&) {}
template <typename T, typename... Rest>
void append_all(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append_all(os, rest...);
}
}  // namespace detail

// Streamable parts joined into one string: str_cat("node ", 3, " (", op, ")").
template <typename... Parts>
std::string str_cat(const Parts&... parts) {
  std::ostringstream os;
  detail::append_all(os, parts...);
  return os.str();
}

// Builds the message from streamable parts: fail("matmul", "inner dims differ: ", a, " @ ", b).
template <typename... Parts>
[[noreturn]] void fail(const std::string& op, const Parts&... parts) {
  std::ostringstream os;
  detail::append_all(os, parts...);
  throw Error(op, os.str());
}

// `op` is taken as given (a string literal, usually) and made a std::string only on
// failure: checks run on every op call, and a std::string per check cost measurably in
// per-op overhead. (Parts are evaluated by the caller either way: format shapes into
// strings only inside `if (!ok) fail(...)`.)
template <typename Op, typename... Parts>
inline void check(bool condition, const Op& op, const Parts&... parts) {
  if (!condition) [[unlikely]]
    fail(op, parts...);
}

}  // namespace tessera
