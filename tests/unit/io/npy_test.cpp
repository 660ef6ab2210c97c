#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "eve/io/dtype.h"
#include "eve/io/jsonl.h"
#include "eve/io/npy.h"
#include "common/io_test_util.h"

namespace {

using eve::io::DType;
using eve::io::NpyArray;
using eve::test::expect_error;
using eve::test::Hostile;
using eve::test::TempDir;
using eve::test::to_hex;

std::string from_hex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out += char(std::stoi(h.substr(i, 2), nullptr, 16));
  return out;
}


template <typename T>
NpyArray make(DType t, std::vector<int64_t> shape, const std::vector<T>& v) {
  NpyArray a;
  a.dtype = t;
  a.shape = std::move(shape);
  a.data.assign(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  return a;
}

TEST(Dtype, NamesAndSizes) {
  EXPECT_STREQ(eve::io::dtype_name(DType::bf16), "BF16");
  EXPECT_EQ(eve::io::dtype_size(DType::i64), 8u);
  EXPECT_EQ(eve::io::dtype_from_name("F16"), DType::f16);
  EXPECT_FALSE(eve::io::dtype_from_name("F64").has_value());
}

TEST(Dtype, HalfConversionIsExactAndRoundsToNearestEven) {
  // Every half converts to a float and back to the same bits (NaNs stay NaN).
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = eve::io::half_to_float(uint16_t(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(eve::io::half_to_float(eve::io::float_to_half(f))));
      continue;
    }
    ASSERT_EQ(eve::io::float_to_half(f), h) << h;
  }
  EXPECT_EQ(eve::io::float_to_half(65504.f), 0x7BFF);
  EXPECT_EQ(eve::io::float_to_half(65520.f), 0x7C00);  // halfway to the next: rounds to inf
  EXPECT_EQ(eve::io::float_to_half(1.f + 1.f / 2048), 0x3C00);  // tie -> even
  EXPECT_EQ(eve::io::float_to_half(1.f + 3.f / 2048), 0x3C02);  // tie -> even (up)
  EXPECT_EQ(eve::io::float_to_half(std::ldexp(1.f, -25)), 0x0000);  // tie at zero
  EXPECT_EQ(eve::io::float_to_half(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(eve::io::float_to_bf16(1.f), 0x3F80);
  EXPECT_EQ(eve::io::bf16_to_float(0x3F80), 1.f);
  EXPECT_EQ(eve::io::float_to_bf16(1.f + 1.f / 256), 0x3F80);  // tie -> even
  EXPECT_EQ(eve::io::float_to_bf16(1.f + 3.f / 256), 0x3F82);
}

TEST(Dtype, FirstNonFiniteFindsNanAndInfinityInEveryFloatType) {
  using eve::io::first_non_finite;
  // Past one block of the vectorised pass, at an odd offset.
  std::vector<float> f(10000, 0.5f);
  EXPECT_EQ(first_non_finite(DType::f32, f.data(), f.size()), -1);
  f[9001] = -INFINITY;
  f[9007] = NAN;
  EXPECT_EQ(first_non_finite(DType::f32, f.data(), f.size()), 9001);
  f[9001] = std::numeric_limits<float>::max();  // the largest finite float is fine
  EXPECT_EQ(first_non_finite(DType::f32, f.data(), f.size()), 9007);
  EXPECT_EQ(first_non_finite(DType::f32, f.data(), 9007), -1);
  std::vector<uint16_t> h(5000, 0x7BFF);  // 65504, the largest finite half
  EXPECT_EQ(first_non_finite(DType::f16, h.data(), h.size()), -1);
  h[4100] = 0xFC00;  // -inf
  EXPECT_EQ(first_non_finite(DType::f16, h.data(), h.size()), 4100);
  std::vector<uint16_t> b(3, 0x3F80);
  b[2] = 0x7FC0;  // NaN
  EXPECT_EQ(first_non_finite(DType::bf16, b.data(), b.size()), 2);
  std::vector<int32_t> i(4, -1);  // all bits set: still an integer
  EXPECT_EQ(first_non_finite(DType::i32, i.data(), i.size()), -1);
}

TEST(Dtype, CheckFiniteNamesFileRowAndColumn) {
  std::vector<float> m(12, 1.f);
  eve::io::check_finite(DType::f32, m.data(), 3, 4, "value", "m.npy");
  m[2 * 4 + 1] = INFINITY;
  std::string what = expect_error([&] { eve::io::check_finite(DType::f32, m.data(), 3, 4, "value", "m.npy", "fix it"); },
                                  {});
  EXPECT_EQ(what, "m.npy: value at row 2, column 1 is inf (fix it)");
  std::vector<uint16_t> h = {0x3C00, 0x7E00};
  what = expect_error([&] { eve::io::check_finite(DType::f16, h.data(), 1, 2, "score", "h.npy"); }, {});
  EXPECT_EQ(what, "h.npy: score at row 0, column 1 is NaN");
  EXPECT_EQ(eve::io::non_finite_message("x", 5, 6, -INFINITY), "x at row 5, column 6 is -inf");
}

TEST(Npy, RoundTripsEveryDtype) {
  TempDir dir;
  std::vector<NpyArray> arrays = {
      eve::io::make_npy_f32({2, 3}, {1, 2, 3, 4, 5, -6.5f}),
      make<uint16_t>(DType::f16, {3}, {0x3C00, 0x7BFF, 0x8001}),
      make<int64_t>(DType::i64, {2}, {INT64_MIN, INT64_MAX}),
      make<int32_t>(DType::i32, {1, 1, 2}, {-7, 9}),
      make<uint8_t>(DType::u8, {4}, {0, 1, 254, 255}),
      eve::io::make_npy_f32({}, {3.f}),
      eve::io::make_npy_f32({0, 5}, {}),
  };
  for (size_t k = 0; k < arrays.size(); ++k) {
    std::string p = dir.file("a" + std::to_string(k) + ".npy");
    eve::io::write_npy(p, arrays[k]);
    NpyArray b = eve::io::read_npy(p);
    EXPECT_EQ(b.dtype, arrays[k].dtype);
    EXPECT_EQ(b.shape, arrays[k].shape);
    EXPECT_EQ(b.data, arrays[k].data);
  }
  EXPECT_EQ(arrays[5].numel(), 1);
  EXPECT_EQ(arrays[6].numel(), 0);
  std::vector<float> f = arrays[1].to_f32();
  EXPECT_EQ(f, (std::vector<float>{1.f, 65504.f, -std::ldexp(1.f, -24)}));
  EXPECT_EQ(arrays[2].to_f32()[1], 9.223372e18f);
  EXPECT_EQ(arrays[4].to_f32()[3], 255.f);
}

TEST(Npy, HeaderMatchesNumpyLayout) {
  std::string h = eve::io::npy_header(DType::f32, {2, 3});
  EXPECT_EQ(h.size() % 64, 0u);
  EXPECT_EQ(h.substr(0, 10), std::string("\x93NUMPY\x01\x00v\x00", 10));
  EXPECT_EQ(h.substr(10, 59), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
  EXPECT_EQ(h.back(), '\n');
  EXPECT_NE(eve::io::npy_header(DType::i64, {5}).find("'shape': (5,), }"), std::string::npos);
  // A header too long for the 16-bit length field switches to version 2.0.
  std::vector<int64_t> many(30000, 1);
  std::string big = eve::io::npy_header(DType::u8, many);
  EXPECT_EQ(big[6], 2);
  EXPECT_EQ(big.size() % 64, 0u);
}

TEST(Npy, WriteRejectsInconsistentArrays) {
  TempDir dir;
  NpyArray a = eve::io::make_npy_f32({2, 2}, {1, 2, 3, 4});
  a.shape = {3, 2};
  expect_error([&] { eve::io::write_npy(dir.file("x.npy"), a); },
               {"x.npy", "16 bytes", "(3, 2)", "needs 24"});
  NpyArray b = make<uint16_t>(DType::bf16, {1}, {0x3F80});
  expect_error([&] { eve::io::write_npy(dir.file("b.npy"), b); }, {"bfloat16 has no .npy dtype"});
  expect_error([] { eve::io::make_npy_f32({2, 2}, {1, 2, 3}); }, {"(2, 2) needs 4 values, got 3"});
  EXPECT_EQ(dir.list(), std::vector<std::string>{});  // nothing half-written
}

TEST(Npy, RowWriterStreamsAndPatchesTheRowCount) {
  TempDir dir;
  std::string p = dir.file("emb.npy");
  {
    eve::io::NpyRowWriter w(p, DType::f32, 3);
    std::vector<float> rows = {1, 2, 3, 4, 5, 6};
    w.append_rows(rows.data(), 2);
    w.append_rows(rows.data(), 1);
    EXPECT_FALSE(eve::io::file_exists(p));  // not visible until finish()
    w.finish();
  }
  NpyArray a = eve::io::read_npy(p);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(a.to_f32(), (std::vector<float>{1, 2, 3, 4, 5, 6, 1, 2, 3}));
  // The header is the one write_npy would produce: the file equals a one-shot write.
  eve::io::write_npy(dir.file("same.npy"), a);
  EXPECT_EQ(eve::test::read_bytes(p), eve::test::read_bytes(dir.file("same.npy")));
  {
    eve::io::NpyRowWriter w(dir.file("abandoned.npy"), DType::f16, 2);
    uint16_t v[2] = {1, 2};
    w.append_rows(v, 1);
  }
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"emb.npy", "same.npy"}));
  expect_error([] { eve::io::NpyRowWriter("-", DType::f32, 2); }, {"needs a real file"});
}

// ---- hostile inputs ---------------------------------------------------------------

std::string npy_with_header(const std::string& dict, const std::string& data,
                            char major = 1) {
  std::string h(std::string("\x93NUMPY", 6));
  h += major;
  h += '\0';
  size_t len = dict.size();
  h += char(len & 0xFF);
  h += char(len >> 8);
  if (major != 1) h += std::string(2, '\0');
  return h + dict + data;
}


TEST(Npy, HostileFilesAreRejectedClearly) {
  const std::string f4 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
  std::vector<Hostile> cases = {
      {"bad magic", "PK\x03\x04 this is a zip", {"not a .npy file (bad magic)"}},
      {"empty", "", {"bad magic"}},
      {"cut in preamble", std::string("\x93NUMPY\x01", 7), {"truncated .npy header"}},
      {"cut in header", npy_with_header(f4, "").substr(0, 30), {"truncated .npy header"}},
      {"version", npy_with_header(f4, std::string(8, '\0'), 9), {"unsupported .npy format version 9.0"}},
      {"fortran",
       npy_with_header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n",
                       std::string(16, '\0')),
       {"Fortran-order", "np.ascontiguousarray"}},
      {"float64", npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n",
                                  std::string(8, '\0')),
       {"unsupported dtype '<f8'"}},
      {"big-endian",
       npy_with_header("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }\n",
                       std::string(4, '\0')),
       {"big-endian dtype '>f4'"}},
      {"structured",
       npy_with_header("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }\n",
                       std::string(4, '\0')),
       {"structured"}},
      {"short data", npy_with_header(f4, std::string(7, '\0')),
       {"data is 7 bytes but shape (2,) of F32 needs 8", "truncated"}},
      {"long data", npy_with_header(f4, std::string(9, '\0')), {"data is 9 bytes", "needs 8"}},
      {"overflow",
       npy_with_header("{'descr': '<f4', 'fortran_order': False, "
                       "'shape': (4294967296, 4294967296), }\n",
                       ""),
       {"too large"}},
      {"huge but consistent-looking",
       npy_with_header("{'descr': '<i8', 'fortran_order': False, 'shape': (100000000000,), }\n",
                       std::string(8, '\0')),
       {"needs 800000000000"}},
      {"negative", npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }\n", ""),
       {"negative dimension"}},
      {"missing key", npy_with_header("{'descr': '<f4', 'shape': (1,), }\n", std::string(4, '\0')),
       {"header lacks"}},
      {"extra key",
       npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}\n", ""),
       {"unexpected key 'x'"}},
      {"garbage after dict", npy_with_header(f4.substr(0, f4.size() - 1) + "junk\n", ""),
       {"unexpected text after the header dict"}},
      {"not a dict", npy_with_header("[1, 2, 3]\n", ""), {"expected '{'"}},
  };
  TempDir dir;
  eve::test::check_hostile(dir.path(), "bad.npy", cases,
                           [](const std::string& p) { eve::io::read_npy(p); });
  expect_error([&] { eve::io::read_npy(dir.file("missing.npy")); }, {"missing.npy", "cannot open"});
}

// ---- numpy interop ----------------------------------------------------------------

TEST(NpyInterop, NumpyFilesReadBackExactly) {
  TempDir dir;
  std::string out;
  ASSERT_EQ(eve::test::run_reference("npy_interop.py", "write", dir.path(), &out), 0) << out;
  auto manifest = eve::io::read_json(dir.file("manifest.json"));
  ASSERT_GE(manifest.size(), 10u);
  for (auto& [name, want] : manifest.items()) {
    SCOPED_TRACE(name);
    NpyArray a = eve::io::read_npy(dir.file(name));
    std::string descr = eve::io::npy_descr(a.dtype);
    EXPECT_EQ(descr, want["dtype"].get<std::string>());
    EXPECT_EQ(a.shape, want["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(to_hex(a.data), want["hex"].get<std::string>());
  }
}

TEST(NpyInterop, OurFilesReadBackInNumpyExactly) {
  TempDir dir;
  eve::io::json manifest;
  auto add = [&](const std::string& name, const NpyArray& a) {
    eve::io::write_npy(dir.file(name), a);
    manifest[name] = {{"dtype", eve::io::npy_descr(a.dtype)}, {"shape", a.shape},
                      {"hex", to_hex(a.data)}};
  };
  add("f32.npy", eve::io::make_npy_f32({2, 2}, {1.f, -0.f, INFINITY, 1e-40f}));
  add("f16.npy", make<uint16_t>(DType::f16, {2}, {0x3C00, 0x0001}));
  add("i64.npy", make<int64_t>(DType::i64, {1, 2}, {INT64_MIN, 5}));
  add("i32.npy", make<int32_t>(DType::i32, {3}, {-1, 0, 1}));
  add("u8.npy", make<uint8_t>(DType::u8, {2, 1}, {7, 200}));
  add("scalar.npy", eve::io::make_npy_f32({}, {0.5f}));
  add("empty.npy", eve::io::make_npy_f32({0}, {}));
  {
    eve::io::NpyRowWriter w(dir.file("rows.npy"), DType::f32, 2);
    std::vector<float> v = {1, 2, 3, 4, 5, 6};
    w.append_rows(v.data(), 3);
    w.finish();
    manifest["rows.npy"] = {{"dtype", "<f4"}, {"shape", {3, 2}},
                            {"hex", to_hex(std::string(reinterpret_cast<char*>(v.data()), 24))}};
  }
  eve::io::write_file_atomic(dir.file("manifest.json"), manifest.dump());
  std::string out;
  EXPECT_EQ(eve::test::run_reference("npy_interop.py", "check", dir.path(), &out), 0) << out;
  EXPECT_NE(out.find("checked 8 files, 0 bad"), std::string::npos) << out;
}

}  // namespace
