#include "tessera/nn/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iomanip>
#include <ostream>
#include <sstream>

namespace tessera::nn {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string duration_text(double s) {
  std::ostringstream os;
  if (s >= 3600)
    os << int(s / 3600) << ":" << std::setw(2) << std::setfill('0') << int(s / 60) % 60 << ":"
       << std::setw(2) << int(s) % 60;
  else if (s >= 60)
    os << int(s / 60) << ":" << std::setw(2) << std::setfill('0') << int(s) % 60;
  else
    os << std::fixed << std::setprecision(s < 10 ? 1 : 0) << s << "s";
  return os.str();
}

}  // namespace

std::string format_logs(const std::map<std::string, double>& logs) {
  std::ostringstream os;
  for (auto& [name, value] : logs) {
    if (name == "samples_per_second") continue;  // shown separately
    os << " - " << name << ": ";
    if (name == "lr")
      os << std::scientific << std::setprecision(2) << value << std::defaultfloat;
    else
      os << std::fixed << std::setprecision(4) << value << std::defaultfloat;
  }
  return os.str();
}

ProgressBar::ProgressBar(int64_t total, std::ostream& out, bool interactive)
    : total_(total),
      out_(out),
      interactive_(interactive),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

bool ProgressBar::stdout_is_terminal() { return isatty(fileno(stdout)) != 0; }

std::string ProgressBar::render(int64_t step, int64_t samples,
                                const std::map<std::string, double>& logs, bool done) const {
  std::ostringstream os;
  double elapsed = seconds_since(start_);
  if (total_ > 0) {
    int width = static_cast<int>(std::to_string(total_).size());
    os << std::setw(width) << step << "/" << total_ << " [";
    int filled = static_cast<int>(30.0 * static_cast<double>(step) / static_cast<double>(total_));
    for (int i = 0; i < 30; ++i) os << (i < filled ? '=' : i == filled && !done ? '>' : '.');
    os << "]";
  } else {
    os << step << " steps";
  }
  if (done || total_ <= 0 || step == 0) {
    os << " - " << duration_text(elapsed);
    if (step > 0)
      os << " " << std::fixed << std::setprecision(0) << 1000 * elapsed / step << "ms/step";
  } else {
    os << " - ETA: " << duration_text(elapsed / step * static_cast<double>(total_ - step));
  }
  os << format_logs(logs);
  if (elapsed > 0 && samples > 0)
    os << " - " << std::fixed << std::setprecision(0) << samples / elapsed << " samples/s";
  return os.str();
}

void ProgressBar::update(int64_t step, int64_t samples, const std::map<std::string, double>& logs) {
  if (!interactive_) return;
  // Redraw at most 10 times a second: drawing must not cost training time.
  if (seconds_since(last_draw_) < 0.1 && step != total_) return;
  last_draw_ = std::chrono::steady_clock::now();
  out_ << "\r" << render(step, samples, logs, false) << "\x1b[K" << std::flush;
}

void ProgressBar::finish(int64_t steps, int64_t samples,
                         const std::map<std::string, double>& logs) {
  if (interactive_) out_ << "\r";
  out_ << render(steps, samples, logs, true) << (interactive_ ? "\x1b[K" : "") << std::endl;
}

}  // namespace tessera::nn
