// NumPy .npy files (format versions 1.0, 2.0 and 3.0 read; 1.0 written unless the header
// needs 2.0): little-endian float32, float16, int64, int32 and uint8 arrays in C order.
// What we write is byte-identical to numpy 1.24's np.save of the same array.
//
// Reading is strict: bad magic, truncated headers or data, Fortran order, big-endian or
// unsupported dtypes, negative or overflowing shapes, and a data size that differs from
// shape x itemsize are errors that name the file and the problem. Nothing is allocated
// before the header has been checked against the file size.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "eve/io/dtype.h"
#include "eve/io/file.h"

namespace eve::io {

struct NpyArray {
  DType dtype = DType::f32;
  std::vector<int64_t> shape;  // () is a scalar (one element)
  std::string data;            // raw little-endian bytes, C order

  int64_t numel() const;
  // Converts f16/bf16/i32/i64/u8/f32 to float (i64 values beyond 2^24 lose precision).
  // Throws when data does not hold numel() elements.
  std::vector<float> to_f32() const;
};

NpyArray read_npy(const std::string& path);  // "-" = stdin; errors name the path
// Atomic. bf16 has no .npy dtype and is rejected; so is data whose size is not
// shape x itemsize.
void write_npy(const std::string& path, const NpyArray& a);
NpyArray make_npy_f32(std::vector<int64_t> shape, std::vector<float> values);
// The .npy preamble and header for an array (magic, version, length, padded dict): what
// write_npy puts before the data.
std::string npy_header(DType dtype, const std::vector<int64_t>& shape);
// The numpy descr string: "<f4", "<f2", "<i8", "<i4", "|u1"; throws for bf16.
const char* npy_descr(DType dtype);

// Streams a 2-D (rows, cols) array whose row count is unknown up front, such as the
// embeddings of a large run: rows are appended as they come, finish() patches the row
// count into the header and renames the file into place. Destroyed without finish(), it
// leaves nothing under `path`. Needs a real file ("-" is rejected).
class NpyRowWriter {
 public:
  NpyRowWriter(std::string path, DType dtype, int64_t cols);
  // `data` holds nrows * cols elements of the writer's dtype, little-endian, row-major.
  void append_rows(const void* data, size_t nrows);
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  void finish();

 private:
  AtomicWriter out_;
  DType dtype_;
  int64_t cols_;
  int64_t rows_ = 0;
  size_t header_size_ = 0;
};

}  // namespace eve::io
