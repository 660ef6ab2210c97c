// Fixtures of the training tests: a dataset dir with a small image store and records files.
#pragma once

#include <fstream>
#include <string>
#include <vector>

#include "eve/image/codec.h"
#include "eve/io/image_store.h"

namespace eve::train::test {

// Stores JPEGs "img0" .. "img<n-1>" in the image store of `dir`, each a different pattern of
// width x height pixels.
inline void write_image_store(const std::string& dir, int n, int width = 24, int height = 20) {
  io::ImageStoreWriter w(dir);
  for (int i = 0; i < n; ++i) {
    image::Image img(width, height);
    for (size_t k = 0; k < img.pixels.size(); ++k) img.pixels[k] = static_cast<uint8_t>(k * (i + 3) + 7 * i);
    w.add("img" + std::to_string(i), image::encode_jpeg(img));
  }
  w.finish();
}

// Writes <dir>/<split>.jsonl, one line per entry; returns its path.
inline std::string write_records(const std::string& dir, const std::string& split,
                                 const std::vector<std::string>& lines) {
  const std::string path = dir + "/" + split + ".jsonl";
  std::ofstream out(path);
  for (const auto& line : lines) out << line << "\n";
  return path;
}

}  // namespace eve::train::test
