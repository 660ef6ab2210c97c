// SIGINT/SIGTERM handling: the first signal sets a stop flag that long loops poll so they
// can checkpoint and exit 128+signal; a second signal ends the process at once, except while
// a DeferHardStop is alive (a checkpoint being written): then the work finishes first and a
// third signal ends the process.
//
// The handler writes only what a program set beforehand: a stop note when the first signal
// arrives ("stopping after this step ...") and an abandon note when a later one ends the
// process at once ("the checkpoint of step 4 in RUN is intact ...").
#pragma once

#include <string>

namespace eve::signals {

void install();
bool stop_requested();
// The signal that asked to stop, or 0.
int stop_signal();
// Throws eve::Interrupted when a stop was requested.
void throw_if_stopped();
// For tests: pretend a signal arrived / forget it (and any deferred second signal).
void request_stop(int signal);
void reset();

// Lines the handler writes to stderr, prefixed with the program name; empty = nothing. Set
// from ordinary code (never from a handler); each is cut at 1000 bytes.
void set_stop_note(const std::string& text);
void set_abandon_note(const std::string& text);

// While one lives, a second signal is held: the handler says the work is being finished and
// returns. A third signal ends the process at once (with the abandon note).
class DeferHardStop {
 public:
  DeferHardStop();
  ~DeferHardStop();
  DeferHardStop(const DeferHardStop&) = delete;
  DeferHardStop& operator=(const DeferHardStop&) = delete;
};
// Whether a second signal arrived during a DeferHardStop (and was held).
bool hard_stop_held();

}  // namespace eve::signals
