#include "eve/core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>

#include "eve/core/log.h"

namespace eve {

namespace {
// Long enough that a day-long run writes a few thousand lines, short enough that a look at
// the log shows a run that moves.
std::atomic<double> g_plain_every{30.0};
}  // namespace

void Progress::set_plain_every(double seconds) { g_plain_every = std::max(0.0, seconds); }
double Progress::plain_every() { return g_plain_every; }

Progress::Progress(std::string label, uint64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      tty_(isatty(STDERR_FILENO) != 0 && log::enabled(log::Level::info)),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  if (tty_ && !finished_) std::fputc('\n', stderr);
}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Progress::format_duration(double s) {
  if (s < 60) return fmt::format("{:.1f}s", s);
  auto total = static_cast<long>(s + 0.5);
  if (total < 3600) return fmt::format("{}m{:02d}s", total / 60, static_cast<int>(total % 60));
  return fmt::format("{}h{:02d}m", total / 3600, static_cast<int>((total % 3600) / 60));
}

void Progress::add(uint64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  done_ += n;
  draw(false);
}

void Progress::set(uint64_t done) {
  std::lock_guard<std::mutex> lock(mutex_);
  done_ = done;
  draw(false);
}

void Progress::set_total(uint64_t total) {
  std::lock_guard<std::mutex> lock(mutex_);
  total_ = total;
}

void Progress::set_loss(double loss) {
  std::lock_guard<std::mutex> lock(mutex_);
  loss_ = loss;
  has_loss_ = true;
}

void Progress::resume_at(uint64_t done) {
  std::lock_guard<std::mutex> lock(mutex_);
  done_ = base_ = done;
}

void Progress::draw(bool force) {
  if (!log::enabled(log::Level::info)) return;
  const double every = tty_ ? 0.2 : plain_every();  // a TTY redraws 5 times a second
  if (!tty_ && every <= 0 && !force) return;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (!force && since < every) return;
  last_draw_ = now;
  double el = std::chrono::duration<double>(now - start_).count();
  const uint64_t ran = done_ - std::min(base_, done_);
  double rate = el > 0 ? ran / el : 0.0;
  const std::string loss = has_loss_ ? fmt::format(", loss {:.4f}", loss_) : "";
  std::string line;
  if (total_ > 0) {
    double frac = std::min(1.0, static_cast<double>(done_) / total_);
    std::string eta = rate > 0 ? format_duration((total_ - std::min(done_, total_)) / rate) : "?";
    if (tty_) {
      const int width = 24;
      int filled = static_cast<int>(frac * width);
      line = fmt::format("{} [{}{}] {}/{}{} {:.1f} {}/s ETA {}", label_, std::string(filled, '#'),
                         std::string(width - filled, '.'), done_, total_,
                         has_loss_ ? fmt::format(" loss {:.4f}", loss_) : "", rate, unit_, eta);
    } else {
      line = fmt::format("{}: {}/{} {} ({:.0f}%){}, {:.1f} {}/s, ETA {}", label_, done_, total_, unit_,
                         100 * frac, loss, rate, unit_, eta);
    }
  } else {
    line = fmt::format("{}: {} {}{}, {:.1f} {}/s", label_, done_, unit_, loss, rate, unit_);
  }
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s: %s", log::program().c_str(), line.c_str());
    std::fflush(stderr);
  } else {
    log::info("{}", line);
  }
}

void Progress::finish(const std::string& extra) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  finished_ = true;
  if (tty_) std::fprintf(stderr, "\r\033[K");
  double el = elapsed_seconds();
  const uint64_t ran = done_ - std::min(base_, done_);
  double rate = el > 0 ? ran / el : 0.0;
  std::string resumed;
  if (base_ > 0) {
    // "steps" -> "step": the unit of one item.
    const std::string one = unit_.size() > 1 && unit_.back() == 's' ? unit_.substr(0, unit_.size() - 1) : unit_;
    resumed = total_ > 0 ? fmt::format(" (resumed at {} {}, now {} of {})", one, base_, done_, total_)
                         : fmt::format(" (resumed at {} {}, now {})", one, base_, done_);
  }
  log::info("{}: {} {} in {}, {:.1f} {}/s{}{}{}", label_, ran, unit_, format_duration(el), rate, unit_, resumed,
            extra.empty() ? "" : ", ", extra);
}

}  // namespace eve
