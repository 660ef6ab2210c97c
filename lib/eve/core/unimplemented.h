#pragma once

#include <string>

namespace eve {

// Thrown by the subcommands whose implementation has not landed yet (exit 1).
[[noreturn]] void not_implemented_yet(const std::string& what);

}  // namespace eve
