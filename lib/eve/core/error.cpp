#include "eve/core/error.h"

#include <nlohmann/json.hpp>

#include <csignal>
#include <cstring>
#include <filesystem>

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

std::string describe_exception(const std::exception& e) {
  if (const auto* fe = dynamic_cast<const std::filesystem::filesystem_error*>(&e)) {
    // libstdc++: "filesystem error: cannot create directories: Permission denied [a] [b]".
    std::string what = fe->what();
    const std::string prefix = "filesystem error: ", reason = ": " + fe->code().message();
    std::string op;
    if (what.rfind(prefix, 0) == 0) {
      const size_t end = what.find(reason, prefix.size());
      if (end != std::string::npos) op = what.substr(prefix.size(), end - prefix.size());
    }
    if (op.empty()) op = "filesystem operation failed";
    std::string paths = fe->path1().string();
    if (!fe->path2().empty()) paths += " -> " + fe->path2().string();
    return format_error(op + ": " + fe->code().message(), paths, {}, {});
  }
  if (dynamic_cast<const nlohmann::json::exception*>(&e)) {
    const std::string what = e.what();
    const size_t tag = what.find("] ");
    return "unexpected JSON: " + (tag == std::string::npos ? what : what.substr(tag + 2));
  }
  return e.what();
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
