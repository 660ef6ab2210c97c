#pragma once

#include <string>

namespace eve {

// Where eve's data files (model configs, task recipes) live: $EVE_SHARE_DIR if set, else
// <prefix>/share/eve next to the installed program, else the source tree's share/eve.
std::string share_dir();
// Resolves a preset name ("eve-tiny") or a path to a file under share_dir()/<sub>.
std::string resolve_share_file(const std::string& sub, const std::string& name_or_path,
                               const std::string& ext);

}  // namespace eve
