// SHA-256 (FIPS 180-4), for fingerprints that other tools can check with `sha256sum`: the
// bundle files an embedding was made from.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace eve {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // The digest as 64 lower-case hex digits; the object is spent afterwards.
  std::string hex();

 private:
  void block(const unsigned char* p);
  uint32_t h_[8];
  unsigned char buf_[64];
  size_t used_ = 0;
  uint64_t bytes_ = 0;
};

std::string sha256_hex(std::string_view data);
// Digest of a whole file, read in chunks; throws eve::Error naming the file when it cannot be
// read.
std::string sha256_file(const std::string& path);

}  // namespace eve
