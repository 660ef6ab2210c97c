// Diagnostics on stderr with levels. Data never goes through here: lib/ returns data and
// the program writes it to stdout.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace eve::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3, quiet = 4 };

void set_level(Level level);
Level level();
// Name printed before every line ("eve-prep: ..."); set once by the program's main.
void set_program(std::string name);
const std::string& program();
// Writes one line to stderr (thread-safe) when `level` is at least the current level.
void write(Level level, std::string_view line);
inline bool enabled(Level l) { return l >= level(); }

template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::debug)) write(Level::debug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::info)) write(Level::info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::warn)) write(Level::warn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::error)) write(Level::error, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace eve::log
