// Element types shared by the binary formats (.npy, safetensors) and the 16-bit float
// conversions they need. All data is little-endian.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace eve::io {

enum class DType { u8, i32, i64, f16, bf16, f32 };

// Bytes per element: 1, 4, 8, 2, 2, 4.
size_t dtype_size(DType);
// The safetensors spelling: "U8", "I32", "I64", "F16", "BF16", "F32".
const char* dtype_name(DType);
// Inverse of dtype_name (exact, upper case); nullopt for anything else.
std::optional<DType> dtype_from_name(std::string_view name);

// IEEE binary16 <-> binary32. half_to_float is exact; float_to_half rounds to nearest even
// (overflow gives infinity, NaN stays NaN).
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
// bfloat16 <-> binary32. bf16_to_float is exact; float_to_bf16 rounds to nearest even.
float bf16_to_float(uint16_t b);
uint16_t float_to_bf16(float f);

// Converts `n` elements of `dtype` stored little-endian at `src` (any alignment) to float.
void convert_to_f32(DType dtype, const void* src, size_t n, float* dst);

}  // namespace eve::io
