// eve::Error and its kinds: every failure in lib/ is thrown as one of these and turned
// into a one-line message and an exit code by the program's main.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace eve {

// Process exit codes shared by every program (docs/architecture.md, "Exit codes").
enum ExitCode : int {
  kExitOk = 0,
  kExitRuntime = 1,
  kExitUsage = 2,
  kExitBadInputs = 3,
  kExitSignalBase = 128,
};

// A failure with enough context to act on: what went wrong, in which file, at which
// record/line/key, and optionally what to do about it.
class Error : public std::runtime_error {
 public:
  explicit Error(std::string what, std::string file = {}, std::string where = {},
                 std::string hint = {});

  const std::string& message() const { return message_; }
  const std::string& file() const { return file_; }
  const std::string& where() const { return where_; }
  const std::string& hint() const { return hint_; }
  virtual int exit_code() const { return kExitRuntime; }

 private:
  std::string message_, file_, where_, hint_;
};

// Wrong flags or arguments (exit 2).
class UsageError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return kExitUsage; }
};

// More bad inputs than --max-bad allows (exit 3); thrown after the report is written.
class TooManyBadInputs : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return kExitBadInputs; }
};

// A long loop stopped cleanly after SIGINT/SIGTERM (exit 128+signal).
class Interrupted : public Error {
 public:
  explicit Interrupted(int signal, std::string what = {});
  int signal() const { return signal_; }
  int exit_code() const override { return kExitSignalBase + signal_; }

 private:
  int signal_;
};

// One line for an exception that is not an eve::Error, without a library's own framing:
// a std::filesystem error names its path first ("PATH: cannot create directories:
// Permission denied"), a JSON library error loses its "[json.exception...]" tag.
std::string describe_exception(const std::exception& e);

// An id that keys a join and appears twice. In a JSON list, `where` and `first` are the two
// records' paths: "FILE: questions[1].question_id 1000 repeats questions[0]"; in a file of
// lines, their line numbers: "FILE:7: identifier \"dev-1-0-0\" repeats line 3". `id` is the
// id as JSON (a string in quotes).
Error repeated_id(const std::string& file, const std::string& where, const std::string& field,
                  const std::string& id, const std::string& first, const std::string& hint = {});
Error repeated_id_on_line(const std::string& file, uint64_t line, const std::string& field,
                          const std::string& id, uint64_t first_line, const std::string& hint = {});

// Formats "file:where: message; hint" leaving out the empty parts.
std::string format_error(const std::string& message, const std::string& file,
                         const std::string& where, const std::string& hint);

}  // namespace eve
