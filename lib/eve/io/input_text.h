// The whole text of an input file without copying it: regular files are memory-mapped
// (a 170 MB VQA annotation file maps in a fraction of the time reading it takes); standard
// input ("-") and other non-regular files are read into memory.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace eve::io {

class InputText {
 public:
  // Throws eve::Error naming the path when it cannot be opened or read.
  explicit InputText(const std::string& path);
  ~InputText();
  InputText(const InputText&) = delete;
  InputText& operator=(const InputText&) = delete;

  std::string_view view() const { return map_ ? std::string_view(map_, size_) : std::string_view(owned_); }
  // The path as messages show it ("<stdin>" for "-").
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  const char* map_ = nullptr;
  size_t size_ = 0;
  std::string owned_;
};

}  // namespace eve::io
