// SIGINT/SIGTERM handling: the first signal sets a stop flag that long loops poll so they
// can checkpoint and exit 128+signal; a second signal ends the process at once.
#pragma once

namespace eve::signals {

void install();
bool stop_requested();
// The signal that asked to stop, or 0.
int stop_signal();
// Throws eve::Interrupted when a stop was requested.
void throw_if_stopped();
// For tests: pretend a signal arrived / forget it.
void request_stop(int signal);
void reset();

}  // namespace eve::signals
