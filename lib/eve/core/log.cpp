#include "eve/core/log.h"

#include <cstdio>
#include <mutex>

namespace eve::log {
namespace {
std::mutex g_mutex;
Level g_level = Level::info;
std::string g_program = "eve";
}  // namespace

void set_level(Level level) { g_level = level; }
Level level() { return g_level; }
void set_program(std::string name) { g_program = std::move(name); }
const std::string& program() { return g_program; }

void write(Level level, std::string_view line) {
  if (level < g_level) return;
  const char* tag = level == Level::warn ? "warning: " : level == Level::error ? "error: " : "";
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fprintf(stderr, "%s: %s%.*s\n", g_program.c_str(), tag, static_cast<int>(line.size()),
               line.data());
  std::fflush(stderr);
}

}  // namespace eve::log
