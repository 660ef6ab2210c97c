// An 8-bit RGB image in row-major, interleaved order, and the pixel-exact geometric
// operations on it (EXIF orientation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace eve::image {

// Leaves new bytes uninitialised unless a value is given (Image::uninitialized), which saves
// a memset and the page faults it causes on each decoded, resized or rendered image.
template <typename T>
struct UninitAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitAllocator<U>;
  };
  UninitAllocator() = default;
  template <typename U>
  UninitAllocator(const UninitAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

using PixelBuffer = std::vector<uint8_t, UninitAllocator<uint8_t>>;

struct Image {
  int width = 0;
  int height = 0;
  PixelBuffer pixels;  // width * height * 3 bytes, R G B

  Image() = default;
  // All pixels black.
  Image(int w, int h) : width(w), height(h), pixels(static_cast<size_t>(w) * h * 3, uint8_t{0}) {}
  // Pixels left undefined, for producers that write every byte.
  static Image uninitialized(int w, int h) {
    Image img;
    img.width = w;
    img.height = h;
    img.pixels.resize(static_cast<size_t>(w) * h * 3);
    return img;
  }

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
