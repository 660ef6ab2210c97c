// Element types shared by the binary formats (.npy, safetensors) and the 16-bit float
// conversions they need. All data is little-endian.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
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

// Index of the first NaN or infinity among the `n` elements of `dtype` at `src` (any
// alignment), or -1 when every one is finite (integers always are). One branch-free pass
// over blocks, which the compiler vectorises: about the cost of reading the data once.
int64_t first_non_finite(DType dtype, const void* src, size_t n);

// "<what> at row R, column C is NaN" (or "inf", "-inf"): how every program names a number
// it cannot use in a matrix (eve-score's scores, eve-rank's and eve-embed's embeddings).
std::string non_finite_message(const std::string& what, int64_t row, int64_t col, float value);

// Throws eve::Error(non_finite_message(what, ...), file, {}, hint) at the first NaN or
// infinity of the rows x cols matrix of `dtype` at `data` (C order).
void check_finite(DType dtype, const void* data, int64_t rows, int64_t cols,
                  const std::string& what, const std::string& file, const std::string& hint = {});

}  // namespace eve::io
