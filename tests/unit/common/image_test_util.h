// Helpers shared by the image and data tests: temp dirs, PPM I/O and the Pillow oracle.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "eve/image/image.h"
#include "eve/io/file.h"

namespace eve::testutil {

inline std::string make_temp_dir(const std::string& tag) {
  std::string templ = (std::filesystem::temp_directory_path() / ("eve-" + tag + "-XXXXXX")).string();
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  return templ;
}

struct TempDir {
  std::string path;
  explicit TempDir(const std::string& tag) : path(make_temp_dir(tag)) {}
  ~TempDir() { eve::io::try_remove_tree(path); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Every regular file under `root` (relative path -> bytes).
inline std::map<std::string, std::string> read_tree(const std::string& root) {
  namespace fs = std::filesystem;
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) files[fs::relative(e.path(), root).string()] = read_bytes(e.path().string());
  return files;
}

inline void write_ppm(const std::string& path, const image::Image& img) {
  std::string s = "P6\n" + std::to_string(img.width) + " " + std::to_string(img.height) + "\n255\n";
  s.append(reinterpret_cast<const char*>(img.pixels.data()), img.pixels.size());
  write_bytes(path, s);
}

inline image::Image read_ppm(const std::string& path) {
  std::string s = read_bytes(path);
  std::istringstream in(s);
  std::string magic;
  int w = 0, h = 0, maxv = 0;
  in >> magic >> w >> h >> maxv;
  in.get();
  image::Image img(w, h);
  in.read(reinterpret_cast<char*>(img.pixels.data()), static_cast<std::streamsize>(img.pixels.size()));
  if (magic != "P6" || !in) throw std::runtime_error("bad PPM " + path);
  return img;
}

// Runs tests/reference/pil_image.py with the tests' Python; true on success.
inline bool pil(const std::string& args) {
  std::string cmd = std::string(EVE_TEST_PYTHON) + " " + EVE_TEST_REFERENCE + "/pil_image.py " + args;
  return std::system(cmd.c_str()) == 0;
}

// A deterministic image with edges, gradients and noise.
inline image::Image test_pattern(int w, int h, uint32_t seed = 1) {
  image::Image img(w, h);
  uint32_t s = seed * 2654435761u + 12345;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      s = s * 1664525u + 1013904223u;
      uint8_t* p = img.at(x, y);
      p[0] = static_cast<uint8_t>((x * 255) / std::max(1, w - 1));
      p[1] = static_cast<uint8_t>(((x / 5 + y / 3) % 2) ? 230 : 20);
      p[2] = static_cast<uint8_t>(s >> 24);
    }
  return img;
}

inline int max_abs_diff(const image::Image& a, const image::Image& b) {
  int m = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) m = std::max(m, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
  return m;
}

}  // namespace eve::testutil
