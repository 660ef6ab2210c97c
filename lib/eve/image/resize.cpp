#include "eve/image/resize.h"

#include <algorithm>
#include <cmath>

#include "eve/core/error.h"

namespace eve::image {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

// The two passes are compiled for AVX2 too and picked at run time (32-bit multiplies need
// SSE4.1/AVX2 to vectorise; the results are the same integers either way).
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define EVE_RESIZE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define EVE_RESIZE_CLONES
#endif

double cubic(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Per output pixel: first input index, number of taps, and ksize fixed-point weights.
struct Coeffs {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weights;
};

Coeffs precompute(int in_size, int out_size) {
  constexpr double support_base = 2.0;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = support_base * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.weights.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[x] = cubic((x + xmin - center + 0.5) * ss);
      ww += k[x];
    }
    int32_t* w = &c.weights[static_cast<size_t>(xx) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      double v = ww != 0.0 ? k[x] / ww : k[x];
      w[x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                   : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> kPrecisionBits);
}

// Rows [row0, row0 + out.height) of `in` resampled horizontally into `out`. Blocks of rows
// are transposed first so that, for each output column, the taps run over contiguous
// memory across rows and channels (the same integer sums, in a vectorisable order).
EVE_RESIZE_CLONES void horizontal(const Image& in, int row0, Image& out, const Coeffs& c) {
  constexpr int32_t half = 1 << (kPrecisionBits - 1);
  constexpr int kBlock = 32;
  const int W = in.width;
  std::vector<uint8_t> t(static_cast<size_t>(W) * kBlock * 3);  // [x][row][channel]
  int32_t acc[kBlock * 3];
  for (int y0 = 0; y0 < out.height; y0 += kBlock) {
    const int rows = std::min(kBlock, out.height - y0);
    const int n = rows * 3;
    for (int r = 0; r < rows; ++r) {
      const uint8_t* src = in.row(row0 + y0 + r);
      for (int x = 0; x < W; ++x) {
        uint8_t* d = &t[(static_cast<size_t>(x) * kBlock + r) * 3];
        d[0] = src[x * 3];
        d[1] = src[x * 3 + 1];
        d[2] = src[x * 3 + 2];
      }
    }
    for (int xx = 0; xx < out.width; ++xx) {
      const int32_t* w = &c.weights[static_cast<size_t>(xx) * c.ksize];
      for (int i = 0; i < n; ++i) acc[i] = half;
      for (int k = 0, cnt = c.count[xx]; k < cnt; ++k) {
        const uint8_t* s = &t[static_cast<size_t>(c.first[xx] + k) * kBlock * 3];
        const int32_t wk = w[k];
        for (int i = 0; i < n; ++i) acc[i] += s[i] * wk;
      }
      for (int r = 0; r < rows; ++r) {
        uint8_t* d = out.row(y0 + r) + static_cast<size_t>(xx) * 3;
        d[0] = clip8(acc[r * 3]);
        d[1] = clip8(acc[r * 3 + 1]);
        d[2] = clip8(acc[r * 3 + 2]);
      }
    }
  }
}

// Vertical pass; `c.first` is relative to the first row of `in`.
EVE_RESIZE_CLONES void vertical(const Image& in, Image& out, const Coeffs& c, int row_shift) {
  constexpr int32_t half = 1 << (kPrecisionBits - 1);
  const size_t stride = static_cast<size_t>(in.width) * 3;
  std::vector<int32_t> acc(stride);
  for (int yy = 0; yy < out.height; ++yy) {
    const int32_t* w = &c.weights[static_cast<size_t>(yy) * c.ksize];
    std::fill(acc.begin(), acc.end(), half);
    const int first = c.first[yy] - row_shift;
    for (int y = 0, n = c.count[yy]; y < n; ++y) {
      const uint8_t* s = in.row(first + y);
      const int32_t wy = w[y];
      for (size_t i = 0; i < stride; ++i) acc[i] += s[i] * wy;
    }
    uint8_t* dst = out.row(yy);
    for (size_t i = 0; i < stride; ++i) dst[i] = clip8(acc[i]);
  }
}

}  // namespace

Image resize_bicubic(const Image& in, int width, int height) {
  if (width <= 0 || height <= 0) throw Error("resize target must be positive, got " +
                                             std::to_string(width) + "x" + std::to_string(height));
  if (in.empty()) throw Error("cannot resize an empty image");
  if (width == in.width && height == in.height) return in;
  const bool need_h = width != in.width, need_v = height != in.height;
  Coeffs ch, cv;
  if (need_h) ch = precompute(in.width, width);
  if (need_v) cv = precompute(in.height, height);
  if (!need_v) {
    Image out = Image::uninitialized(width, height);
    horizontal(in, 0, out, ch);
    return out;
  }
  // Only the rows the vertical pass reads go through the horizontal pass.
  const int row_first = cv.first.front();
  const int row_last = cv.first.back() + cv.count.back();
  Image out = Image::uninitialized(width, height);
  if (!need_h) {
    vertical(in, out, cv, 0);
    return out;
  }
  Image tmp = Image::uninitialized(width, row_last - row_first);
  horizontal(in, row_first, tmp, ch);
  vertical(tmp, out, cv, row_first);
  return out;
}

void shorter_side_size(int width, int height, int short_side, int& out_width, int& out_height) {
  out_width = width;
  out_height = height;
  if (short_side <= 0) return;
  const int s = std::min(width, height), l = std::max(width, height);
  if (s <= short_side) return;
  const int new_long = static_cast<int>(static_cast<int64_t>(short_side) * l / s);
  if (width <= height) {
    out_width = short_side;
    out_height = new_long;
  } else {
    out_width = new_long;
    out_height = short_side;
  }
}

}  // namespace eve::image
