#include "eve/io/dtype.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "eve/core/error.h"

namespace eve::io {
namespace {

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

template <typename T>
T load_le(const unsigned char* p) {
  // The host is little-endian (x86-64, aarch64); memcpy keeps unaligned reads legal.
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// First index among n elements of bits type U whose exponent field (kExp) is all ones, i.e.
// NaN or infinity. Each block is tested without branches (vectorised), and searched
// element by element only when it holds one.
template <typename U, U kExp>
int64_t first_all_ones_exponent(const unsigned char* p, size_t n) {
  constexpr size_t kBlock = 4096;
  for (size_t b = 0; b < n; b += kBlock) {
    const size_t m = std::min(kBlock, n - b);
    const unsigned char* q = p + b * sizeof(U);
    U count = 0;  // a count, not a flag: GCC vectorises the sum, not an OR of bools
    for (size_t i = 0; i < m; ++i) count += (load_le<U>(q + i * sizeof(U)) & kExp) == kExp;
    if (count == 0) continue;
    for (size_t i = 0; i < m; ++i)
      if ((load_le<U>(q + i * sizeof(U)) & kExp) == kExp) return static_cast<int64_t>(b + i);
  }
  return -1;
}

}  // namespace

size_t dtype_size(DType t) {
  switch (t) {
    case DType::u8: return 1;
    case DType::f16:
    case DType::bf16: return 2;
    case DType::i32:
    case DType::f32: return 4;
    case DType::i64: return 8;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::u8: return "U8";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::f32: return "F32";
  }
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (DType t : {DType::u8, DType::i32, DType::i64, DType::f16, DType::bf16, DType::f32})
    if (name == dtype_name(t)) return t;
  return std::nullopt;
}

float half_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t man = h & 0x3FF;
  if (exp == 0x1F) return bits_float(sign | 0x7F800000u | (man << 13));  // inf / NaN
  if (exp != 0) return bits_float(sign | ((exp + 112) << 23) | (man << 13));
  if (man == 0) return bits_float(sign);  // signed zero
  // Subnormal: value = man * 2^-24, exactly representable in float.
  float v = float(man) * bits_float(0x33800000u);  // 2^-24
  return sign ? -v : v;
}

uint16_t float_to_half(float f) {
  uint32_t u = float_bits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000);
  uint32_t abs = u & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return uint16_t(sign | 0x7E00 | ((abs >> 13) & 0x3FF));  // NaN
  if (abs >= 0x47800000u) return uint16_t(sign | 0x7C00);  // >= 65536: inf (also rounds)
  if (abs < 0x38800000u) {
    // Result is subnormal or zero in half: round abs * 2^24 to an integer (nearest even).
    if (abs < 0x33000000u) return sign;  // < 2^-25: rounds to zero
    uint32_t exp = abs >> 23;
    uint32_t man = (abs & 0x7FFFFF) | 0x800000;
    uint32_t shift = 126 - exp;  // man * 2^(exp-150) * 2^24 = man >> (126 - exp)
    uint32_t q = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) ++q;
    return uint16_t(sign | q);
  }
  // Normal: rebias the exponent, round the mantissa to 10 bits (a carry may bump the
  // exponent, up to infinity, which is the correct rounding).
  uint32_t r = abs - 0x38000000u;  // exponent bias 127 -> 15
  uint32_t q = r >> 13;
  uint32_t rem = r & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) ++q;
  return uint16_t(sign | q);
}

float bf16_to_float(uint16_t b) { return bits_float(uint32_t(b) << 16); }

uint16_t float_to_bf16(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  uint32_t rounding = 0x7FFF + ((u >> 16) & 1);
  return uint16_t((u + rounding) >> 16);
}

void convert_to_f32(DType dtype, const void* src, size_t n, float* dst) {
  const auto* p = static_cast<const unsigned char*>(src);
  switch (dtype) {
    case DType::f32:
      std::memcpy(dst, p, n * 4);
      return;
    case DType::f16:
      for (size_t i = 0; i < n; ++i) dst[i] = half_to_float(load_le<uint16_t>(p + 2 * i));
      return;
    case DType::bf16:
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_float(load_le<uint16_t>(p + 2 * i));
      return;
    case DType::i32:
      for (size_t i = 0; i < n; ++i) dst[i] = float(load_le<int32_t>(p + 4 * i));
      return;
    case DType::i64:
      for (size_t i = 0; i < n; ++i) dst[i] = float(load_le<int64_t>(p + 8 * i));
      return;
    case DType::u8:
      for (size_t i = 0; i < n; ++i) dst[i] = float(p[i]);
      return;
  }
}

int64_t first_non_finite(DType dtype, const void* src, size_t n) {
  const auto* p = static_cast<const unsigned char*>(src);
  switch (dtype) {
    case DType::f32: return first_all_ones_exponent<uint32_t, 0x7F800000u>(p, n);
    case DType::f16: return first_all_ones_exponent<uint16_t, 0x7C00>(p, n);
    case DType::bf16: return first_all_ones_exponent<uint16_t, 0x7F80>(p, n);
    case DType::i32:
    case DType::i64:
    case DType::u8: return -1;
  }
  return -1;
}

std::string non_finite_message(const std::string& what, int64_t row, int64_t col, float value) {
  const char* name = std::isnan(value) ? "NaN" : value > 0 ? "inf" : "-inf";
  return fmt::format("{} at row {}, column {} is {}", what, row, col, name);
}

void check_finite(DType dtype, const void* data, int64_t rows, int64_t cols,
                  const std::string& what, const std::string& file, const std::string& hint) {
  const int64_t at = first_non_finite(dtype, data, static_cast<size_t>(rows * cols));
  if (at < 0) return;
  float value;
  convert_to_f32(dtype, static_cast<const unsigned char*>(data) + static_cast<size_t>(at) * dtype_size(dtype),
                 1, &value);
  throw Error(non_finite_message(what, at / cols, at % cols, value), file, {}, hint);
}

}  // namespace eve::io
