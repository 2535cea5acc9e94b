// A Keras-style progress display for training loops. On a terminal it redraws one line
// per batch ("120/469 [=====>........] - ETA: 12s - loss: 0.4321 - 5123 samples/s");
// otherwise it prints a single line when the epoch ends.
#pragma once
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>

namespace tessera::nn {

class ProgressBar {
 public:
  // total_steps < 0 when unknown. interactive: redraw in place (default: stdout is a tty).
  ProgressBar(int64_t total_steps, std::ostream& out, bool interactive);
  static bool stdout_is_terminal();
  void update(int64_t step, int64_t samples_seen, const std::map<std::string, double>& logs);
  // Ends the epoch line with the final logs (which may include validation entries).
  void finish(int64_t steps, int64_t samples_seen, const std::map<std::string, double>& logs);

 private:
  std::string render(int64_t step, int64_t samples, const std::map<std::string, double>& logs,
                     bool done) const;
  int64_t total_;
  std::ostream& out_;
  bool interactive_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// Formats logs as " - name: value" pairs (lr in scientific notation).
std::string format_logs(const std::map<std::string, double>& logs);

}  // namespace tessera::nn
