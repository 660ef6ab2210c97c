// Interned strings: each distinct string stored once and named by a dense 32-bit id, so that
// millions of short repeated strings (VQA answers, type names) cost four bytes each and
// compare as integers.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

namespace eve {

class StringPool {
 public:
  StringPool() = default;
  // Moving keeps the deque's elements in place, so the index stays valid; a copy would not.
  StringPool(StringPool&&) = default;
  StringPool& operator=(StringPool&&) = default;
  StringPool(const StringPool&) = delete;
  StringPool& operator=(const StringPool&) = delete;

  // The id of s, adding it on first sight. Ids are given in order of first appearance.
  uint32_t intern(std::string_view s) {
    auto it = index_.find(s);
    if (it != index_.end()) return it->second;
    auto id = static_cast<uint32_t>(strings_.size());
    strings_.emplace_back(s);  // a deque never moves its elements
    index_.emplace(strings_.back(), id);
    return id;
  }
  const std::string& operator[](uint32_t id) const { return strings_[id]; }
  size_t size() const { return strings_.size(); }

 private:
  std::deque<std::string> strings_;
  std::unordered_map<std::string_view, uint32_t> index_;
};

}  // namespace eve
