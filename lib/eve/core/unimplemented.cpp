#include "eve/core/unimplemented.h"

#include "eve/core/error.h"

namespace eve {

void not_implemented_yet(const std::string& what) {
  throw Error(what + ": not implemented yet in this version of eve");
}

}  // namespace eve
