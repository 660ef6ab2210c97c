// Image -> model input: the conversion every torch program shares (torch-free, so it runs
// on loader threads). EVE normalises with mean = std = 0.5 per channel after scaling to
// [0, 1], i.e. x / 127.5 - 1, giving values in [-1, 1].
#pragma once

#include "eve/image/image.h"

namespace eve::image {

// Writes 3 * height * width floats in CHW order (R plane, G plane, B plane).
void to_chw_normalized(const Image& image, float* out);

// The evaluation transform: bicubic resize to res x res (aspect not kept, as EVE's test
// transform does), then to_chw_normalized. Writes 3 * res * res floats.
void eval_transform(const Image& image, int res, float* out);

}  // namespace eve::image
