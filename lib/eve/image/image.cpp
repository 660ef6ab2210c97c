#include "eve/image/image.h"

#include <cstring>

namespace eve::image {

Image apply_orientation(const Image& in, int orientation) {
  if (orientation < 2 || orientation > 8) return in;
  // For each output pixel (x, y) find the source pixel. Orientations 5..8 swap axes.
  const bool swap = orientation >= 5;
  const int W = in.width, H = in.height;
  Image out = Image::uninitialized(swap ? H : W, swap ? W : H);
  for (int y = 0; y < out.height; ++y) {
    uint8_t* dst = out.row(y);
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;
      switch (orientation) {
        case 2: sx = W - 1 - x; sy = y; break;                  // mirror horizontally
        case 3: sx = W - 1 - x; sy = H - 1 - y; break;          // rotate 180
        case 4: sx = x; sy = H - 1 - y; break;                  // mirror vertically
        case 5: sx = y; sy = x; break;                          // transpose
        case 6: sx = y; sy = H - 1 - x; break;                  // rotate 90 clockwise
        case 7: sx = W - 1 - y; sy = H - 1 - x; break;          // transverse
        case 8: sx = W - 1 - y; sy = x; break;                  // rotate 90 counter-clockwise
      }
      std::memcpy(dst + static_cast<size_t>(x) * 3, in.at(sx, sy), 3);
    }
  }
  return out;
}

}  // namespace eve::image
