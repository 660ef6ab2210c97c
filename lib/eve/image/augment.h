// Training-time image augmentation (docs/architecture.md, "Augmentation"): random resized crop
// (torchvision's sampling rule, bicubic resize), horizontal flip and RandAugment with EVE's
// operations and magnitudes. Every random choice comes from an explicit eve::Rng, so a
// generator seeded from (seed, epoch, index) always gives the same crop, flip and ops, on
// any thread.
#pragma once

#include "eve/core/rng.h"
#include "eve/image/image.h"

namespace eve::image {

struct CropBox {
  int x = 0, y = 0, width = 0, height = 0;
};

// torchvision RandomResizedCrop.get_params: up to 10 tries of an area fraction uniform in
// [scale_min, scale_max] and an aspect ratio log-uniform in [ratio_min, ratio_max] that
// fit inside width x height; otherwise the largest centred box whose ratio is clamped into
// the range.
CropBox random_resized_crop_box(int width, int height, double scale_min, double scale_max,
                                double ratio_min, double ratio_max, Rng& rng);

Image crop(const Image& in, const CropBox& box);
Image hflip(const Image& in);

// RandAugment operations on 8-bit RGB, as EVE's OpenCV-based RandomAugment computes them.
Image auto_contrast(const Image& in);                 // per channel min..max -> 0..255
Image equalize(const Image& in);                      // per-channel histogram equalisation
Image brightness(const Image& in, double factor);     // v * factor, truncated into 0..255
Image sharpness(const Image& in, double factor);      // blend with a 3x3 smoothing (border kept)
// Affine warp with bilinear sampling; `m` maps source to destination coordinates
// (x' = m0 x + m1 y + m2, y' = m3 x + m4 y + m5, as cv2.warpAffine takes it); pixels
// outside the source get `fill`.
Image warp_affine(const Image& in, const double m[6], uint8_t fill = 128);
Image shear_x(const Image& in, double factor);
Image shear_y(const Image& in, double factor);
Image translate_x(const Image& in, double pixels);
Image translate_y(const Image& in, double pixels);
Image rotate(const Image& in, double degrees);  // counter-clockwise about the centre

// RandAugment: `ops` operations drawn with replacement from {Identity, AutoContrast,
// Equalize, Brightness, Sharpness, ShearX, ShearY, TranslateX, TranslateY, Rotate}, each
// applied with probability 0.5, at magnitude m of 10 (m = 7: enhance 1.36, shear 0.21,
// translate 7 px, rotate 21 degrees; geometric ops take a random sign).
Image rand_augment(const Image& in, int ops, int magnitude, Rng& rng);

struct AugmentOptions {
  int res = 224;              // output side
  double scale_min = 0.5, scale_max = 1.0;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  bool flip = true;           // horizontal flip with p = 0.5
  bool rand_augment = false;  // RandAugment after crop and flip
  int rand_augment_ops = 2;
  int rand_augment_magnitude = 7;
};

// Crop + bicubic resize to res x res, flip, optional RandAugment (the training transform).
Image augment(const Image& in, const AugmentOptions& options, Rng& rng);

}  // namespace eve::image
