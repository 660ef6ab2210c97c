#include "eve/io/npy.h"

#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

#include "eve/core/error.h"

namespace eve::io {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kAlign = 64;
constexpr size_t kMaxHeader = size_t{1} << 20;  // numpy writes < 1 KiB; refuse silly ones
constexpr size_t kMaxDims = 64;
// numpy leaves room in the header so the first axis can grow to this many digits.
constexpr size_t kGrowthDigits = 21;

std::string display(const std::string& path) { return path == "-" ? "<stdin>" : path; }

struct Header {
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  uint64_t nbytes = 0;  // data bytes the shape needs
};

// A strict parser for the Python dict literal numpy writes:
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
class DictParser {
 public:
  DictParser(std::string_view s, const std::string& file) : s_(s), file_(file) {}

  Header parse() {
    bool have_descr = false, have_order = false, have_shape = false;
    std::string descr;
    bool fortran = false;
    std::vector<int64_t> shape;
    expect('{');
    for (;;) {
      ws();
      if (peek() == '}') break;
      std::string key = string_literal("a key");
      ws();
      expect(':');
      ws();
      if (key == "descr") {
        if (peek() == '[')
          fail("structured (record) dtypes are not supported",
               "save a plain numeric array (float32, float16, int64, int32 or uint8)");
        descr = string_literal("the descr value");
        have_descr = true;
      } else if (key == "fortran_order") {
        fortran = boolean();
        have_order = true;
      } else if (key == "shape") {
        shape = tuple();
        have_shape = true;
      } else {
        fail("unexpected key '" + key + "' in the header");
      }
      ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      ws();
      if (peek() != '}') fail("expected ',' or '}' in the header dict");
    }
    ++i_;
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r'))
      ++i_;
    if (i_ != s_.size()) fail("unexpected text after the header dict");
    if (!have_descr || !have_order || !have_shape)
      fail("header lacks one of 'descr', 'fortran_order', 'shape'");
    if (fortran)
      fail("Fortran-order (column-major) arrays are not supported",
           "save np.ascontiguousarray(arr) instead");
    Header h;
    h.dtype = dtype_of(descr);
    h.shape = std::move(shape);
    uint64_t n = dtype_size(h.dtype);
    for (int64_t d : h.shape) {
      if (d != 0 && n > uint64_t(std::numeric_limits<int64_t>::max()) / uint64_t(d))
        fail("shape " + shape_text(h.shape) + " is too large (its byte size overflows)");
      n *= uint64_t(d);
    }
    h.nbytes = n;
    return h;
  }

  static std::string shape_text(const std::vector<int64_t>& shape) {
    std::string t = "(";
    for (size_t k = 0; k < shape.size(); ++k) {
      if (k) t += ", ";
      t += std::to_string(shape[k]);
    }
    if (shape.size() == 1) t += ",";
    return t + ")";
  }

 private:
  [[noreturn]] void fail(const std::string& what, const std::string& hint = {}) const {
    throw Error(what, file_, "header", hint);
  }
  char peek() const {
    if (i_ >= s_.size()) fail("header ends inside the dict");
    return s_[i_];
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  void expect(char c) {
    ws();
    if (peek() != c) fail(std::string("expected '") + c + "' in the header dict");
    ++i_;
  }
  std::string string_literal(const char* what) {
    char q = peek();
    if (q != '\'' && q != '"') fail(std::string("expected a quoted string for ") + what);
    size_t end = s_.find(q, i_ + 1);
    if (end == std::string_view::npos) fail("unterminated string in the header");
    std::string out(s_.substr(i_ + 1, end - i_ - 1));
    if (out.find('\\') != std::string::npos) fail("escapes in header strings are not supported");
    i_ = end + 1;
    return out;
  }
  bool boolean() {
    if (s_.substr(i_, 4) == "True") {
      i_ += 4;
      return true;
    }
    if (s_.substr(i_, 5) == "False") {
      i_ += 5;
      return false;
    }
    fail("fortran_order must be True or False");
  }
  std::vector<int64_t> tuple() {
    std::vector<int64_t> dims;
    expect('(');
    for (;;) {
      ws();
      if (peek() == ')') break;
      if (peek() == '-') fail("negative dimension in shape");
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("shape must be a tuple of integers");
      uint64_t v = 0;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) {
        v = v * 10 + uint64_t(s_[i_] - '0');
        if (v > uint64_t(std::numeric_limits<int64_t>::max())) fail("dimension too large in shape");
        ++i_;
      }
      if (i_ < s_.size() && s_[i_] == 'L') ++i_;  // Python 2 long literal
      dims.push_back(int64_t(v));
      if (dims.size() > kMaxDims) fail("shape has more than " + std::to_string(kMaxDims) + " dimensions");
      ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() != ')') fail("expected ',' or ')' in shape");
    }
    ++i_;
    return dims;
  }
  DType dtype_of(const std::string& d) const {
    if (d.size() >= 2) {
      char order = d[0];
      std::string code = d.substr(1);
      if (order == '>' && code != "u1" && code != "i1" && code != "b1")
        fail("big-endian dtype '" + d + "' is not supported",
             "convert with arr.astype(arr.dtype.newbyteorder('<'))");
      bool le = order == '<' || order == '|' || order == '=';
      if (le || order == '>') {
        if (code == "f4" && order != '|') return DType::f32;
        if (code == "f2" && order != '|') return DType::f16;
        if (code == "i8" && order != '|') return DType::i64;
        if (code == "i4" && order != '|') return DType::i32;
        if (code == "u1") return DType::u8;
      }
    }
    fail("unsupported dtype '" + d + "' (supported: <f4, <f2, <i8, <i4, |u1)",
         "convert with numpy, e.g. arr.astype(np.float32)");
  }

  std::string_view s_;
  const std::string& file_;
  size_t i_ = 0;
};

uint32_t le_u32(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// Checks the preamble (the first 8 bytes plus the length field); returns the total size of
// preamble + header, i.e. where the data starts. `avail` is how many bytes `p` holds.
size_t preamble(const unsigned char* p, size_t avail, const std::string& file) {
  if (avail < kMagicLen || std::memcmp(p, kMagic, kMagicLen) != 0)
    throw Error("not a .npy file (bad magic)", file, {}, "expected a file written by numpy.save");
  if (avail < 10) throw Error("truncated .npy header", file);
  unsigned major = p[6], minor = p[7];
  if ((major < 1 || major > 3) || minor != 0)
    throw Error("unsupported .npy format version " + std::to_string(major) + "." +
                    std::to_string(minor) + " (supported: 1.0, 2.0, 3.0)",
                file);
  size_t len_size = major == 1 ? 2 : 4;
  if (avail < 8 + len_size) throw Error("truncated .npy header", file);
  size_t hlen = major == 1 ? size_t(p[8] | p[9] << 8) : size_t(le_u32(p + 8));
  if (hlen > kMaxHeader)
    throw Error("header length " + std::to_string(hlen) + " is implausible", file, "header");
  return 8 + len_size + hlen;
}

Header parse_header(std::string_view bytes, const std::string& file) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t data_off = preamble(p, bytes.size(), file);
  if (bytes.size() < data_off) throw Error("truncated .npy header", file);
  size_t hstart = p[6] == 1 ? 10 : 12;
  return DictParser(bytes.substr(hstart, data_off - hstart), file).parse();
}

void check_size(const Header& h, uint64_t have, const std::string& file) {
  if (have != h.nbytes)
    throw Error("data is " + std::to_string(have) + " bytes but shape " +
                    DictParser::shape_text(h.shape) + " of " + dtype_name(h.dtype) + " needs " +
                    std::to_string(h.nbytes),
                file, {}, have < h.nbytes ? "the file is truncated" : "");
}

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

void read_exact(FILE* f, void* dst, size_t n, const std::string& file) {
  if (n && std::fread(dst, 1, n, f) != n) throw Error("read error or truncated file", file);
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void check_array(const NpyArray& a, const std::string& file) {
  uint64_t n = dtype_size(a.dtype);
  for (int64_t d : a.shape) {
    if (d < 0) throw Error("negative dimension in shape", file);
    if (d != 0 && n > uint64_t(std::numeric_limits<int64_t>::max()) / uint64_t(d))
      throw Error("shape is too large (its byte size overflows)", file);
    n *= uint64_t(d);
  }
  if (a.data.size() != n)
    throw Error("array data is " + std::to_string(a.data.size()) + " bytes but shape " +
                    DictParser::shape_text(a.shape) + " of " + dtype_name(a.dtype) + " needs " +
                    std::to_string(n),
                file);
}

}  // namespace

int64_t NpyArray::numel() const { return numel_of(shape); }

std::vector<float> NpyArray::to_f32() const {
  check_array(*this, "<array>");
  std::vector<float> out(static_cast<size_t>(numel()));
  convert_to_f32(dtype, data.data(), out.size(), out.data());
  return out;
}

const char* npy_descr(DType dtype) {
  switch (dtype) {
    case DType::f32: return "<f4";
    case DType::f16: return "<f2";
    case DType::i64: return "<i8";
    case DType::i32: return "<i4";
    case DType::u8: return "|u1";
    case DType::bf16: break;
  }
  throw Error("bfloat16 has no .npy dtype", {}, {}, "convert to float32 or float16 first");
}

std::string npy_header(DType dtype, const std::vector<int64_t>& shape) {
  std::string dict = std::string("{'descr': '") + npy_descr(dtype) +
                     "', 'fortran_order': False, 'shape': " + DictParser::shape_text(shape) +
                     ", }";
  if (!shape.empty()) {
    size_t digits = std::to_string(shape[0]).size();
    if (digits < kGrowthDigits) dict.append(kGrowthDigits - digits, ' ');
  }
  // Pad (with spaces, then "\n") so preamble + header is a multiple of 64, as numpy does
  // (a full 64 bytes of padding when already aligned).
  auto wrap = [&](unsigned major) {
    size_t pre = 8 + (major == 1 ? 2 : 4);
    size_t hlen = dict.size() + 1;
    size_t pad = kAlign - (pre + hlen) % kAlign;
    size_t total = hlen + pad;
    std::string out(kMagic, kMagicLen);
    out += char(major);
    out += char(0);
    for (size_t k = 0; k < pre - 8; ++k) out += char((total >> (8 * k)) & 0xFF);
    out += dict;
    out.append(pad, ' ');
    out += '\n';
    return out;
  };
  std::string v1 = wrap(1);
  return v1.size() - 10 <= 0xFFFF ? v1 : wrap(2);
}

NpyArray read_npy(const std::string& path) {
  const std::string file = display(path);
  if (path == "-") {
    std::string all = read_file(path);
    Header h = parse_header(all, file);
    size_t off = preamble(reinterpret_cast<const unsigned char*>(all.data()), all.size(), file);
    check_size(h, all.size() - off, file);
    NpyArray a;
    a.dtype = h.dtype;
    a.shape = std::move(h.shape);
    a.data = all.substr(off);
    return a;
  }
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw Error(std::string("cannot open: ") + std::strerror(errno), file);
  struct stat st {};
  if (::fstat(fileno(f.get()), &st) != 0 || !S_ISREG(st.st_mode))
    throw Error("not a regular file", file);
  uint64_t fsize = uint64_t(st.st_size);
  unsigned char pre[12];
  size_t got = std::fread(pre, 1, sizeof pre, f.get());
  size_t off = preamble(pre, got, file);
  if (off > fsize) throw Error("truncated .npy header", file);
  std::string head(off, '\0');
  std::memcpy(head.data(), pre, std::min(got, off));
  if (off > got) read_exact(f.get(), head.data() + got, off - got, file);
  Header h = parse_header(head, file);
  check_size(h, fsize - off, file);  // before allocating what the header asks for
  NpyArray a;
  a.dtype = h.dtype;
  a.shape = std::move(h.shape);
  if (got > off) {  // tiny header: some data bytes came with the preamble read
    a.data.assign(reinterpret_cast<const char*>(pre) + off, got - off);
  }
  size_t have = a.data.size();
  a.data.resize(h.nbytes);
  read_exact(f.get(), a.data.data() + have, h.nbytes - have, file);
  return a;
}

void write_npy(const std::string& path, const NpyArray& a) {
  check_array(a, display(path));
  std::string head = npy_header(a.dtype, a.shape);
  AtomicWriter out(path);
  out.write(head);
  out.write(a.data);
  out.commit();
}

NpyArray make_npy_f32(std::vector<int64_t> shape, std::vector<float> values) {
  NpyArray a;
  a.dtype = DType::f32;
  a.shape = std::move(shape);
  for (int64_t d : a.shape)
    if (d < 0) throw Error("negative dimension in shape");
  if (numel_of(a.shape) != int64_t(values.size()))
    throw Error("shape " + DictParser::shape_text(a.shape) + " needs " +
                std::to_string(numel_of(a.shape)) + " values, got " +
                std::to_string(values.size()));
  a.data.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  return a;
}

NpyRowWriter::NpyRowWriter(std::string path, DType dtype, int64_t cols)
    : out_(path == "-" ? throw Error("a streamed .npy needs a real file, not stdout", "<stdout>",
                                     {}, "give an output path")
                       : path),
      dtype_(dtype),
      cols_(cols) {
  if (cols < 1) throw Error("a streamed .npy needs at least one column", path);
  std::string head = npy_header(dtype, {0, cols});
  header_size_ = head.size();
  out_.write(head);
}

void NpyRowWriter::append_rows(const void* data, size_t nrows) {
  uint64_t row_bytes = uint64_t(cols_) * dtype_size(dtype_);
  out_.write(data, nrows * row_bytes);
  rows_ += int64_t(nrows);
}

void NpyRowWriter::finish() {
  std::string head = npy_header(dtype_, {rows_, cols_});
  if (head.size() != header_size_) throw Error("internal: .npy header changed size", out_.path());
  out_.write_at(0, head.data(), head.size());
  out_.commit();
}

}  // namespace eve::io
