#include "eve/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "eve/core/error.h"
#include "eve/io/file.h"

namespace eve::io {
namespace {

using ojson = nlohmann::ordered_json;

constexpr uint64_t kMaxHeader = 100'000'000;  // the reference implementation's limit
constexpr char kMetadataKey[] = "__metadata__";

std::string tensor_where(const std::string& name) { return "tensor '" + name + "'"; }

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string t = "[";
  for (size_t k = 0; k < shape.size(); ++k) t += (k ? ", " : "") + std::to_string(shape[k]);
  return t + "]";
}

// Bytes a tensor of this shape and dtype needs; throws on overflow.
uint64_t byte_size(DType dtype, const std::vector<int64_t>& shape, const std::string& file,
                   const std::string& name) {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) {
    if (d < 0)
      throw Error("negative dimension in shape " + shape_text(shape), file, tensor_where(name));
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / 2 / uint64_t(d))
      throw Error("shape " + shape_text(shape) + " is too large (its byte size overflows)", file,
                  tensor_where(name));
    n *= uint64_t(d);
  }
  return n;
}

uint64_t get_u64(const ojson& v, const char* what, const std::string& file,
                 const std::string& name) {
  if (!v.is_number_unsigned())
    throw Error(std::string(what) + " must hold non-negative integers", file, tensor_where(name));
  return v.get<uint64_t>();
}

ojson parse_header(std::string_view text, const std::string& file) {
  if (text.empty() || text[0] != '{')
    throw Error("header does not start with '{'", file, "header", "is this a safetensors file?");
  if (!is_valid_utf8(text)) throw Error("header is not valid UTF-8", file, "header");
  std::unordered_set<std::string> seen;
  auto cb = [&](int depth, ojson::parse_event_t event, ojson& parsed) {
    if (event == ojson::parse_event_t::key && depth == 1) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!seen.insert(key).second)
        throw Error("duplicate tensor name in the header", file, tensor_where(key));
    }
    return true;
  };
  try {
    return ojson::parse(text.begin(), text.end(), cb);
  } catch (const ojson::exception& e) {
    std::string msg = e.what();
    auto pos = msg.find("] ");
    throw Error("invalid JSON header: " + (pos == std::string::npos ? msg : msg.substr(pos + 2)),
                file, "header");
  }
}

}  // namespace

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(std::string("cannot open: ") + std::strerror(errno), path);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error("not a regular file", path);
  }
  uint64_t fsize = uint64_t(st.st_size);
  if (fsize < 8) {
    ::close(fd);
    throw Error("file too small for a safetensors header (" + std::to_string(fsize) + " bytes)",
                path);
  }
  map_ = ::mmap(nullptr, size_t(fsize), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw Error(std::string("cannot map: ") + std::strerror(errno), path);
  }
  map_size_ = size_t(fsize);
  try {
    const auto* base = static_cast<const unsigned char*>(map_);
    uint64_t n = 0;
    for (int k = 7; k >= 0; --k) n = (n << 8) | base[k];
    if (n > kMaxHeader)
      throw Error("header length " + std::to_string(n) + " exceeds the 100 MB limit", path,
                  "header", "the file is corrupt or not a safetensors file");
    if (8 + n > fsize)
      throw Error("header length " + std::to_string(n) + " runs past the end of the file (" +
                      std::to_string(fsize) + " bytes)",
                  path, "header", "the file is truncated or not a safetensors file");
    ojson header = parse_header(
        std::string_view(reinterpret_cast<const char*>(base + 8), size_t(n)), path);
    if (!header.is_object()) throw Error("header is not a JSON object", path, "header");
    const unsigned char* data = base + 8 + n;
    uint64_t data_size = fsize - 8 - n;

    struct Span {
      uint64_t begin, end;
      size_t index;
    };
    std::vector<Span> spans;
    for (auto& [name, info] : header.items()) {
      if (name == kMetadataKey) {
        if (!info.is_object())
          throw Error("__metadata__ must be an object of strings", path, "header");
        for (auto& [k, v] : info.items()) {
          if (!v.is_string())
            throw Error("__metadata__ value of '" + k + "' is not a string", path, "header");
          metadata_[k] = v.get<std::string>();
        }
        continue;
      }
      if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") ||
          !info.contains("data_offsets"))
        throw Error("entry needs \"dtype\", \"shape\" and \"data_offsets\"", path,
                    tensor_where(name));
      const ojson& jd = info["dtype"];
      std::string dname = jd.is_string() ? jd.get<std::string>() : jd.dump();
      auto dtype = dtype_from_name(dname);
      if (!dtype)
        throw Error("unsupported dtype " + dname + " (supported: F32, F16, BF16, I64, I32, U8)",
                    path, tensor_where(name));
      const ojson& js = info["shape"];
      if (!js.is_array()) throw Error("shape must be an array", path, tensor_where(name));
      TensorView t;
      t.name = name;
      t.dtype = *dtype;
      for (auto& d : js) {
        if (d.is_number_integer() && !d.is_number_unsigned())
          throw Error("negative dimension in shape " + js.dump(), path, tensor_where(name));
        uint64_t v = get_u64(d, "shape", path, name);
        if (v > uint64_t(std::numeric_limits<int64_t>::max()))
          throw Error("dimension too large in shape " + js.dump(), path, tensor_where(name));
        t.shape.push_back(int64_t(v));
      }
      const ojson& jo = info["data_offsets"];
      if (!jo.is_array() || jo.size() != 2)
        throw Error("data_offsets must be [begin, end]", path, tensor_where(name));
      uint64_t begin = get_u64(jo[0], "data_offsets", path, name);
      uint64_t end = get_u64(jo[1], "data_offsets", path, name);
      if (end < begin)
        throw Error("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                        "] end before they begin",
                    path, tensor_where(name));
      uint64_t need = byte_size(t.dtype, t.shape, path, name);
      if (need != end - begin)
        throw Error("shape " + shape_text(t.shape) + " of " + dname + " needs " +
                        std::to_string(need) + " bytes but data_offsets span " +
                        std::to_string(end - begin),
                    path, tensor_where(name));
      if (end > data_size)
        throw Error("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                        "] run past the end of the data (" + std::to_string(data_size) +
                        " bytes)",
                    path, tensor_where(name), "the file is truncated");
      t.data = data + begin;
      t.nbytes = size_t(end - begin);
      spans.push_back({begin, end, tensors_.size()});
      tensors_.push_back(std::move(t));
    }
    // The tensors must tile the data region: sorted by offsets, each starts where the
    // previous one ended, and the last one ends at the end of the file.
    std::stable_sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    uint64_t at = 0;
    for (size_t k = 0; k < spans.size(); ++k) {
      const std::string& name = tensors_[spans[k].index].name;
      if (spans[k].begin < at)
        throw Error("data overlaps tensor '" + tensors_[spans[k - 1].index].name + "'", path,
                    tensor_where(name));
      if (spans[k].begin > at)
        throw Error("gap of " + std::to_string(spans[k].begin - at) +
                        " bytes before its data (tensors must be contiguous)",
                    path, tensor_where(name));
      at = spans[k].end;
    }
    if (at != data_size)
      throw Error(std::to_string(data_size - at) +
                      " bytes of data after the last tensor belong to no tensor",
                  path, "data");
    std::vector<TensorView> ordered;
    ordered.reserve(tensors_.size());
    for (const Span& s : spans) ordered.push_back(std::move(tensors_[s.index]));
    tensors_ = std::move(ordered);
    for (size_t k = 0; k < tensors_.size(); ++k) by_name_[tensors_[k].name] = k;
  } catch (...) {
    release();
    throw;
  }
}

void SafetensorsReader::release() {
  if (map_) ::munmap(map_, map_size_);
  map_ = nullptr;
  map_size_ = 0;
}

SafetensorsReader::~SafetensorsReader() { release(); }

SafetensorsReader::SafetensorsReader(SafetensorsReader&& other) noexcept { *this = std::move(other); }

SafetensorsReader& SafetensorsReader::operator=(SafetensorsReader&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    map_ = other.map_;
    map_size_ = other.map_size_;
    tensors_ = std::move(other.tensors_);
    by_name_ = std::move(other.by_name_);
    metadata_ = std::move(other.metadata_);
    other.map_ = nullptr;
    other.map_size_ = 0;
  }
  return *this;
}

const TensorView* SafetensorsReader::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  ojson header = ojson::object();
  if (!metadata.empty()) {
    ojson m = ojson::object();
    for (auto& [k, v] : metadata) m[k] = v;
    header[kMetadataKey] = std::move(m);
  }
  std::unordered_set<std::string> names;
  uint64_t at = 0;
  for (const TensorView& t : tensors) {
    if (t.name.empty()) throw Error("tensor with an empty name", path);
    if (t.name == kMetadataKey)
      throw Error("\"__metadata__\" is reserved and cannot name a tensor", path);
    if (!names.insert(t.name).second)
      throw Error("duplicate tensor name", path, tensor_where(t.name));
    uint64_t need = byte_size(t.dtype, t.shape, path, t.name);
    if (need != t.nbytes)
      throw Error("shape " + shape_text(t.shape) + " of " + dtype_name(t.dtype) + " needs " +
                      std::to_string(need) + " bytes, got " + std::to_string(t.nbytes),
                  path, tensor_where(t.name));
    if (t.nbytes && !t.data) throw Error("tensor has no data", path, tensor_where(t.name));
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {at, at + t.nbytes}}};
    at += t.nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const ojson::exception&) {
    throw Error("a tensor name or metadata string is not valid UTF-8", path);
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  unsigned char len[8];
  for (int k = 0; k < 8; ++k) len[k] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * k));
  AtomicWriter out(path);
  out.write(len, 8);
  out.write(text);
  for (const TensorView& t : tensors) out.write(t.data, t.nbytes);
  out.commit();
}

}  // namespace eve::io
