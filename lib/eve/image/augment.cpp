#include "eve/image/augment.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "eve/core/error.h"
#include "eve/image/resize.h"

namespace eve::image {

namespace {

uint8_t clamp_u8(double v) { return static_cast<uint8_t>(std::min(255.0, std::max(0.0, v))); }

// Applies one 256-entry table per channel.
Image apply_tables(const Image& in, const std::array<std::array<uint8_t, 256>, 3>& t) {
  Image out(in.width, in.height);
  const size_t n = static_cast<size_t>(in.width) * in.height;
  const uint8_t* s = in.pixels.data();
  uint8_t* d = out.pixels.data();
  for (size_t i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c) d[3 * i + c] = t[c][s[3 * i + c]];
  return out;
}

std::array<std::array<uint64_t, 256>, 3> histograms(const Image& in) {
  std::array<std::array<uint64_t, 256>, 3> h{};
  const size_t n = static_cast<size_t>(in.width) * in.height;
  for (size_t i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c) ++h[c][in.pixels[3 * i + c]];
  return h;
}

}  // namespace

CropBox random_resized_crop_box(int width, int height, double scale_min, double scale_max,
                                double ratio_min, double ratio_max, Rng& rng) {
  if (width <= 0 || height <= 0) throw Error("random_resized_crop_box: empty image");
  const double area = static_cast<double>(width) * height;
  const double log_lo = std::log(ratio_min), log_hi = std::log(ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * rng.uniform(scale_min, scale_max);
    const double ratio = std::exp(rng.uniform(log_lo, log_hi));
    const int w = static_cast<int>(std::lround(std::sqrt(target * ratio)));
    const int h = static_cast<int>(std::lround(std::sqrt(target / ratio)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      CropBox b;
      b.y = rng.between(0, height - h);
      b.x = rng.between(0, width - w);
      b.width = w;
      b.height = h;
      return b;
    }
  }
  const double in_ratio = static_cast<double>(width) / height;
  CropBox b;
  if (in_ratio < ratio_min) {
    b.width = width;
    b.height = static_cast<int>(std::lround(width / ratio_min));
  } else if (in_ratio > ratio_max) {
    b.height = height;
    b.width = static_cast<int>(std::lround(height * ratio_max));
  } else {
    b.width = width;
    b.height = height;
  }
  b.width = std::max(1, std::min(b.width, width));
  b.height = std::max(1, std::min(b.height, height));
  b.x = (width - b.width) / 2;
  b.y = (height - b.height) / 2;
  return b;
}

Image crop(const Image& in, const CropBox& b) {
  if (b.x < 0 || b.y < 0 || b.width <= 0 || b.height <= 0 || b.x + b.width > in.width ||
      b.y + b.height > in.height)
    throw Error("crop: box outside the image");
  Image out(b.width, b.height);
  for (int y = 0; y < b.height; ++y)
    std::memcpy(out.row(y), in.at(b.x, b.y + y), static_cast<size_t>(b.width) * 3);
  return out;
}

Image hflip(const Image& in) {
  Image out(in.width, in.height);
  for (int y = 0; y < in.height; ++y) {
    const uint8_t* s = in.row(y);
    uint8_t* d = out.row(y);
    for (int x = 0; x < in.width; ++x) std::memcpy(d + 3 * x, s + 3 * (in.width - 1 - x), 3);
  }
  return out;
}

Image auto_contrast(const Image& in) {
  auto h = histograms(in);
  std::array<std::array<uint8_t, 256>, 3> t;
  for (int c = 0; c < 3; ++c) {
    int lo = 0, hi = 255;
    while (lo < 255 && h[c][lo] == 0) ++lo;
    while (hi > 0 && h[c][hi] == 0) --hi;
    for (int v = 0; v < 256; ++v) {
      if (hi <= lo) {
        t[c][v] = static_cast<uint8_t>(v);
      } else {
        t[c][v] = clamp_u8((v - lo) * 255.0 / (hi - lo));
      }
    }
  }
  return apply_tables(in, t);
}

Image equalize(const Image& in) {
  auto h = histograms(in);
  const uint64_t total = static_cast<uint64_t>(in.width) * in.height;
  std::array<std::array<uint8_t, 256>, 3> t;
  for (int c = 0; c < 3; ++c) {
    int first = 0;
    while (first < 255 && h[c][first] == 0) ++first;
    const uint64_t rest = total - h[c][first];
    if (rest == 0) {  // a single value: nothing to spread
      for (int v = 0; v < 256; ++v) t[c][v] = static_cast<uint8_t>(v);
      continue;
    }
    const double scale = 255.0 / static_cast<double>(rest);
    uint64_t cum = 0;
    for (int v = 0; v < 256; ++v) {
      if (v > first) cum += h[c][v];
      t[c][v] = v < first ? 0 : clamp_u8(std::round(static_cast<double>(cum) * scale));
    }
  }
  return apply_tables(in, t);
}

Image brightness(const Image& in, double factor) {
  std::array<std::array<uint8_t, 256>, 3> t;
  for (int v = 0; v < 256; ++v) t[0][v] = clamp_u8(std::floor(v * factor));
  t[1] = t[0];
  t[2] = t[0];
  return apply_tables(in, t);
}

Image sharpness(const Image& in, double factor) {
  Image out = in;
  if (in.width < 3 || in.height < 3 || factor == 1.0) return out;
  // Smoothing kernel: 1 everywhere, 5 in the centre, divided by 13; border pixels stay.
  for (int y = 1; y + 1 < in.height; ++y)
    for (int x = 1; x + 1 < in.width; ++x)
      for (int c = 0; c < 3; ++c) {
        int sum = 0;
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx) sum += in.at(x + dx, y + dy)[c];
        sum += 4 * in.at(x, y)[c];
        const double blur = std::round(sum / 13.0);
        out.at(x, y)[c] = clamp_u8(blur + factor * (in.at(x, y)[c] - blur));
      }
  return out;
}

Image warp_affine(const Image& in, const double m[6], uint8_t fill) {
  const double det = m[0] * m[4] - m[1] * m[3];
  if (std::abs(det) < 1e-12) throw Error("warp_affine: singular matrix");
  // Inverse map: destination -> source.
  const double a = m[4] / det, b = -m[1] / det, d = -m[3] / det, e = m[0] / det;
  const double c = -(a * m[2] + b * m[5]), f = -(d * m[2] + e * m[5]);
  Image out(in.width, in.height);
  for (int y = 0; y < in.height; ++y) {
    for (int x = 0; x < in.width; ++x) {
      const double sx = a * x + b * y + c, sy = d * x + e * y + f;
      const int x0 = static_cast<int>(std::floor(sx)), y0 = static_cast<int>(std::floor(sy));
      const double fx = sx - x0, fy = sy - y0;
      uint8_t* o = out.at(x, y);
      for (int ch = 0; ch < 3; ++ch) {
        auto tap = [&](int xx, int yy) -> double {
          if (xx < 0 || yy < 0 || xx >= in.width || yy >= in.height) return fill;
          return in.at(xx, yy)[ch];
        };
        const double v = (1 - fy) * ((1 - fx) * tap(x0, y0) + fx * tap(x0 + 1, y0)) +
                         fy * ((1 - fx) * tap(x0, y0 + 1) + fx * tap(x0 + 1, y0 + 1));
        o[ch] = clamp_u8(std::round(v));
      }
    }
  }
  return out;
}

Image shear_x(const Image& in, double factor) {
  const double m[6] = {1, factor, 0, 0, 1, 0};
  return warp_affine(in, m);
}

Image shear_y(const Image& in, double factor) {
  const double m[6] = {1, 0, 0, factor, 1, 0};
  return warp_affine(in, m);
}

Image translate_x(const Image& in, double pixels) {
  const double m[6] = {1, 0, -pixels, 0, 1, 0};
  return warp_affine(in, m);
}

Image translate_y(const Image& in, double pixels) {
  const double m[6] = {1, 0, 0, 0, 1, -pixels};
  return warp_affine(in, m);
}

Image rotate(const Image& in, double degrees) {
  // cv2.getRotationMatrix2D(centre, degrees, 1).
  const double r = degrees * 3.14159265358979323846 / 180.0;
  const double al = std::cos(r), be = std::sin(r);
  const double cx = in.width / 2.0, cy = in.height / 2.0;
  const double m[6] = {al, be, (1 - al) * cx - be * cy, -be, al, be * cx + (1 - al) * cy};
  return warp_affine(in, m);
}

Image rand_augment(const Image& in, int ops, int magnitude, Rng& rng) {
  constexpr double kMax = 10.0;
  const double level = magnitude / kMax;
  Image img = in;
  for (int i = 0; i < ops; ++i) {
    const int op = rng.below(10);
    if (!rng.chance(0.5)) continue;
    const double sign = rng.chance(0.5) ? -1.0 : 1.0;
    switch (op) {
      case 0: break;  // Identity
      case 1: img = auto_contrast(img); break;
      case 2: img = equalize(img); break;
      case 3: img = brightness(img, level * 1.8 + 0.1); break;
      case 4: img = sharpness(img, level * 1.8 + 0.1); break;
      case 5: img = shear_x(img, sign * level * 0.3); break;
      case 6: img = shear_y(img, sign * level * 0.3); break;
      case 7: img = translate_x(img, sign * level * 10.0); break;
      case 8: img = translate_y(img, sign * level * 10.0); break;
      default: img = rotate(img, sign * level * 30.0); break;
    }
  }
  return img;
}

Image augment(const Image& in, const AugmentOptions& o, Rng& rng) {
  CropBox box = random_resized_crop_box(in.width, in.height, o.scale_min, o.scale_max, o.ratio_min,
                                        o.ratio_max, rng);
  Image img = resize_bicubic(crop(in, box), o.res, o.res);
  if (o.flip && rng.chance(0.5)) img = hflip(img);
  if (o.rand_augment) img = rand_augment(img, o.rand_augment_ops, o.rand_augment_magnitude, rng);
  return img;
}

}  // namespace eve::image
