// Shared by the eval_* tests.
#pragma once

#include <string>

#include "eve/core/error.h"

namespace eve::eval::test {

// The message of the eve::Error that f throws, or "(no error)".
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const eve::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace eve::eval::test
