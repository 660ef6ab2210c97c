// safetensors files (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]},
// "__metadata__": {string: string}}, then the raw little-endian C-order tensor bytes.
//
// The reader maps the file and checks it as strictly as the reference implementation:
// header length within the file and at most 100 MB, JSON starting with '{', no duplicate
// names, known dtypes (F32, F16, BF16, I64, I32, U8), shape x itemsize equal to the
// offsets' span, and the tensors' data tiling the data region exactly (no overlap, no gap,
// nothing after the last tensor). Errors name the file and the tensor. Tensor data is not
// necessarily aligned for its type: copy it (std::memcpy) rather than casting the pointer
// when the file may come from elsewhere (files we write keep every tensor 8-byte aligned
// when all sizes are multiples of 8).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "eve/io/dtype.h"

namespace eve::io {

struct TensorView {
  std::string name;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
};

class SafetensorsReader {  // keeps the file mapped while alive
 public:
  explicit SafetensorsReader(const std::string& path);
  ~SafetensorsReader();
  SafetensorsReader(SafetensorsReader&& other) noexcept;
  SafetensorsReader& operator=(SafetensorsReader&& other) noexcept;
  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;

  const std::vector<TensorView>& tensors() const { return tensors_; }  // in file (data) order
  const TensorView* find(const std::string& name) const;              // nullptr when absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

 private:
  void release();
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, size_t> by_name_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (in the given order, data contiguous) and the metadata atomically. Names
// must be unique, non-empty and not "__metadata__"; nbytes must equal shape x itemsize.
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace eve::io
