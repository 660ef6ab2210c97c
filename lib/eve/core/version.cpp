#include "eve/core/version.h"

#include <fmt/format.h>

#ifndef EVE_VERSION_STRING
#error "EVE_VERSION_STRING must be defined by the build"
#endif

namespace eve {

const char* version() { return EVE_VERSION_STRING; }

std::string version_line(const std::string& program, const std::string& extra) {
#if defined(__clang__)
  std::string compiler = fmt::format("clang {}.{}", __clang_major__, __clang_minor__);
#elif defined(__GNUC__)
  std::string compiler = fmt::format("g++ {}.{}", __GNUC__, __GNUC_MINOR__);
#else
  std::string compiler = "unknown compiler";
#endif
  return fmt::format("{} {} ({}{}{})", program, version(), compiler, extra.empty() ? "" : "; ",
                     extra);
}

}  // namespace eve
