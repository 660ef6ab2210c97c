// The message of an expected eve::Error, for tests that check it word for word.
#pragma once

#include <string>

#include "eve/core/error.h"

namespace eve::test {

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

}  // namespace eve::test
