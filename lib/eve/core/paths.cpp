#include "eve/core/paths.h"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "eve/core/error.h"

namespace eve {

namespace fs = std::filesystem;

namespace {

// Whether `path` names anything (links followed): io::file_exists's rule, kept here so that
// core needs nothing from the layers above it.
bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

std::string share_dir() {
  if (const char* env = std::getenv("EVE_SHARE_DIR"); env && *env) return env;
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) {
    std::string exe(buf, static_cast<size_t>(n));
    auto slash = exe.rfind('/');
    if (slash != std::string::npos) {
      std::string installed = exe.substr(0, slash) + "/../share/eve";
      if (exists(installed + "/configs")) return installed;
    }
  }
  return EVE_SOURCE_SHARE_DIR;
}

std::string resolve_share_file(const std::string& sub, const std::string& name_or_path,
                               const std::string& ext) {
  // A bare name is a preset unless a regular file of that name exists here (a directory
  // named like a preset, e.g. a work dir called "vqa", does not hide the preset).
  std::error_code ec;
  if (name_or_path.find('/') != std::string::npos || fs::is_regular_file(name_or_path, ec)) {
    if (!exists(name_or_path)) throw Error("no such file", name_or_path);
    return name_or_path;
  }
  std::string p = share_dir() + "/" + sub + "/" + name_or_path + ext;
  if (!exists(p))
    throw UsageError("unknown " + sub + " preset '" + name_or_path + "'", {}, {},
                     "looked for " + p);
  return p;
}

}  // namespace eve
