// "a, b, c, d, e, ..." for error messages that name the first few offending ids.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <string>
#include <vector>

namespace eve::eval {

template <typename T>
std::string first_items(const std::vector<T>& items, size_t shown = 5) {
  std::string s;
  for (size_t i = 0; i < items.size() && i < shown; ++i) s += fmt::format("{}{}", i ? ", " : "", items[i]);
  if (items.size() > shown) s += ", ...";
  return s;
}

}  // namespace eve::eval
