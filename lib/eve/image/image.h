// An 8-bit RGB image in row-major, interleaved order, and the pixel-exact geometric
// operations on it (EXIF orientation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace eve::image {

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // width * height * 3 bytes, R G B

  Image() = default;
  Image(int w, int h) : width(w), height(h), pixels(static_cast<size_t>(w) * h * 3) {}

  bool empty() const { return width == 0 || height == 0; }
  uint8_t* row(int y) { return pixels.data() + static_cast<size_t>(y) * width * 3; }
  const uint8_t* row(int y) const { return pixels.data() + static_cast<size_t>(y) * width * 3; }
  uint8_t* at(int x, int y) { return row(y) + static_cast<size_t>(x) * 3; }
  const uint8_t* at(int x, int y) const { return row(y) + static_cast<size_t>(x) * 3; }
};

// Applies an EXIF orientation (1..8, TIFF tag 0x0112) so the result is upright, the same
// transposition Pillow's ImageOps.exif_transpose makes. 1 and unknown values return the
// image unchanged.
Image apply_orientation(const Image& in, int orientation);

}  // namespace eve::image
