#pragma once

#include <string>

namespace eve {

// The release version, e.g. "0.1.0".
const char* version();
// "eve-prep 0.1.0 (eve-core; C++17, g++ 12.2)" plus any extra build facts
// (torch programs add the libtorch version and CUDA support).
std::string version_line(const std::string& program, const std::string& extra = {});

}  // namespace eve
