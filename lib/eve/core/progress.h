// A progress display for long loops: a redrawn bar (items/s, ETA) when stderr is a TTY,
// periodic plain lines otherwise (readable in Slurm logs, `2>log`, nohup), and always a
// one-line summary. A plain line reads
//   pretrain: 40/200 steps (20%), loss 2.3456, 12.3 steps/s, ETA 13.0s
// (", loss X" only once set_loss was called; no total: "embed: 300 img, 51.0 img/s").
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace eve {

class Progress {
 public:
  // total = 0 when unknown. unit names the items ("img", "lines", "steps").
  Progress(std::string label, uint64_t total = 0, std::string unit = "items");
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void add(uint64_t n = 1);
  void set(uint64_t done);
  void set_total(uint64_t total);
  // The loss shown from now on, on the bar and the plain lines. It is whatever the caller
  // last had on the host: a trainer passes the loss of its last logging step.
  void set_loss(double loss);
  // A resumed loop: `done` items were finished by an earlier process. The count shown goes
  // on from there; rates, ETA and the summary count only the items done since.
  void resume_at(uint64_t done);
  // Prints the final summary line ("label: 120 img in 3.2 s, 37.5 img/s") once; after
  // resume_at: "label: 20 steps in 3.2 s, 6.2 steps/s (resumed at step 80, now 100 of 100)".
  void finish(const std::string& extra = {});
  uint64_t done() const { return done_; }
  double elapsed_seconds() const;

  // Seconds between plain lines off a terminal for every Progress of the process (the
  // programs' --progress-every); 0: none, only the summary.
  static void set_plain_every(double seconds);
  static double plain_every();

  // Formats seconds as "12.3s", "4m05s" or "2h03m".
  static std::string format_duration(double seconds);

 private:
  void draw(bool force);

  std::string label_, unit_;
  uint64_t total_, done_ = 0, base_ = 0;
  bool tty_, finished_ = false, has_loss_ = false;
  double loss_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  std::mutex mutex_;
};

}  // namespace eve
