#include "eve/core/error.h"

#include <csignal>
#include <cstring>

namespace eve {

std::string format_error(const std::string& message, const std::string& file,
                         const std::string& where, const std::string& hint) {
  std::string out;
  if (!file.empty()) {
    out += file;
    if (!where.empty()) out += ":" + where;
    out += ": ";
  } else if (!where.empty()) {
    out += where + ": ";
  }
  out += message;
  if (!hint.empty()) out += " (" + hint + ")";
  return out;
}

Error::Error(std::string what, std::string file, std::string where, std::string hint)
    : std::runtime_error(format_error(what, file, where, hint)),
      message_(std::move(what)),
      file_(std::move(file)),
      where_(std::move(where)),
      hint_(std::move(hint)) {}

Error repeated_id(const std::string& file, const std::string& where, const std::string& field,
                  const std::string& id, const std::string& first, const std::string& hint) {
  return Error(where + "." + field + " " + id + " repeats " + first, file, {}, hint);
}

Error repeated_id_on_line(const std::string& file, uint64_t line, const std::string& field,
                          const std::string& id, uint64_t first_line, const std::string& hint) {
  return Error(field + " " + id + " repeats line " + std::to_string(first_line), file,
               std::to_string(line), hint);
}

Interrupted::Interrupted(int signal, std::string what)
    : Error(what.empty() ? std::string("stopped by signal ") + std::to_string(signal) + " (" +
                               strsignal(signal) + ")"
                         : std::move(what)),
      signal_(signal) {}

}  // namespace eve
