// Resizing equivalent to Pillow's Image.resize(size, Image.BICUBIC) (Pillow >= 7): a
// separable convolution with the a = -0.5 cubic kernel whose support grows with the
// downscale factor (antialiasing), fixed-point coefficients with 22 fractional bits,
// horizontal pass first, rounding and clamping as Pillow does.
#pragma once

#include "eve/image/image.h"

namespace eve::image {

Image resize_bicubic(const Image& in, int width, int height);

// The size with the shorter side equal to `short_side` and the longer side scaled by the
// same factor, truncated (torchvision's Resize(int) rule). Sizes whose shorter side is
// already <= short_side are returned unchanged (never upscales); short_side <= 0 keeps
// the size.
void shorter_side_size(int width, int height, int short_side, int& out_width, int& out_height);

}  // namespace eve::image
