#include "eve/image/preprocess.h"

#include "eve/image/resize.h"

namespace eve::image {

void to_chw_normalized(const Image& image, float* out) {
  const size_t plane = static_cast<size_t>(image.width) * image.height;
  const uint8_t* p = image.pixels.data();
  for (size_t i = 0; i < plane; ++i) {
    out[i] = p[3 * i] / 127.5f - 1.0f;
    out[plane + i] = p[3 * i + 1] / 127.5f - 1.0f;
    out[2 * plane + i] = p[3 * i + 2] / 127.5f - 1.0f;
  }
}

void eval_transform(const Image& image, int res, float* out) {
  if (image.width == res && image.height == res) {
    to_chw_normalized(image, out);
    return;
  }
  to_chw_normalized(resize_bicubic(image, res, res), out);
}

}  // namespace eve::image
