#include <gtest/gtest.h>

#include <cstring>

#include "eve/io/jsonl.h"
#include "eve/io/safetensors.h"
#include "common/io_test_util.h"

namespace {

using eve::io::DType;
using eve::io::SafetensorsReader;
using eve::io::TensorView;
using eve::test::expect_error;
using eve::test::Hostile;
using eve::test::TempDir;
using eve::test::to_hex;


std::string st_file(const std::string& header, const std::string& data) {
  std::string out;
  uint64_t n = header.size();
  for (int k = 0; k < 8; ++k) out += char((n >> (8 * k)) & 0xFF);
  return out + header + data;
}

TEST(Safetensors, WriteThenReadBack) {
  TempDir dir;
  std::vector<float> w = {1, 2, 3, 4, 5, 6};
  std::vector<uint16_t> h = {0x3C00, 0xBC00, 0x7C00};
  std::vector<int64_t> step = {123456789012345};
  std::vector<uint8_t> u = {9};
  std::vector<TensorView> ts = {
      {"blocks.0.w", DType::f32, {2, 3}, w.data(), 24},
      {"blocks.0.h", DType::f16, {3}, h.data(), 6},
      {"step", DType::i64, {}, step.data(), 8},
      {"flag", DType::u8, {1}, u.data(), 1},
      {"none", DType::bf16, {0, 4}, nullptr, 0},
  };
  std::string p = dir.file("m.safetensors");
  eve::io::write_safetensors(p, ts, {{"config", "{\"a\": 1}"}, {"format", "pt"}});
  SafetensorsReader r(p);
  ASSERT_EQ(r.tensors().size(), ts.size());
  for (size_t k = 0; k < ts.size(); ++k) {
    const TensorView& t = r.tensors()[k];  // file order is the order written
    EXPECT_EQ(t.name, ts[k].name);
    EXPECT_EQ(t.dtype, ts[k].dtype);
    EXPECT_EQ(t.shape, ts[k].shape);
    ASSERT_EQ(t.nbytes, ts[k].nbytes);
    if (t.nbytes) EXPECT_EQ(std::memcmp(t.data, ts[k].data, t.nbytes), 0);
  }
  EXPECT_EQ(r.metadata().at("config"), "{\"a\": 1}");
  EXPECT_EQ(r.path(), p);
  ASSERT_NE(r.find("step"), nullptr);
  int64_t s;
  std::memcpy(&s, r.find("step")->data, 8);
  EXPECT_EQ(s, 123456789012345);
  EXPECT_EQ(r.find("absent"), nullptr);
  // The header is padded so the data starts 8-byte aligned.
  std::string bytes = eve::test::read_bytes(p);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.substr(8, 15), "{\"__metadata__\"");
  // Moving the reader keeps the mapping alive.
  SafetensorsReader moved = std::move(r);
  EXPECT_EQ(std::memcmp(moved.find("blocks.0.w")->data, w.data(), 24), 0);
}

TEST(Safetensors, WriteRejectsBadTensors) {
  TempDir dir;
  std::vector<float> w = {1, 2};
  std::string p = dir.file("bad.safetensors");
  expect_error([&] { eve::io::write_safetensors(p, {{"a", DType::f32, {3}, w.data(), 8}}); },
               {"tensor 'a'", "needs 12 bytes, got 8"});
  expect_error(
      [&] {
        eve::io::write_safetensors(p, {{"a", DType::f32, {1}, w.data(), 4},
                                       {"a", DType::f32, {1}, w.data(), 4}});
      },
      {"tensor 'a'", "duplicate tensor name"});
  expect_error([&] { eve::io::write_safetensors(p, {{"__metadata__", DType::f32, {1}, w.data(), 4}}); },
               {"reserved"});
  expect_error([&] { eve::io::write_safetensors(p, {{"x\xff", DType::f32, {1}, w.data(), 4}}); },
               {"not valid UTF-8"});
  EXPECT_EQ(dir.list(), std::vector<std::string>{});
}


TEST(Safetensors, HostileFilesAreRejectedClearly) {
  const std::string f8(8, '\0');
  auto one = [](const std::string& entry) { return std::string("{\"t\":") + entry + "}"; };
  std::string huge_len = std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}";
  std::vector<Hostile> cases = {
      {"empty", "", {"file too small", "0 bytes"}},
      {"tiny", "abc", {"file too small"}},
      {"absurd header length", huge_len, {"exceeds the 100 MB limit"}},
      {"header past end", std::string("\x10\0\0\0\0\0\0\0", 8) + "{}",
       {"header length 16 runs past the end of the file (10 bytes)"}},
      {"not json", st_file("{\"t\": nope}", ""), {"invalid JSON header"}},
      {"not an object", st_file("[1, 2]", ""), {"does not start with '{'"}},
      {"bad utf-8", st_file("{\"\xc3(\":1}", ""), {"not valid UTF-8"}},
      {"unknown dtype",
       st_file(one("{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}"), f8),
       {"tensor 't'", "unsupported dtype F64"}},
      {"missing offsets", st_file(one("{\"dtype\":\"F32\",\"shape\":[2]}"), f8),
       {"tensor 't'", "needs \"dtype\", \"shape\" and \"data_offsets\""}},
      {"shape vs offsets",
       st_file(one("{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}"), f8),
       {"tensor 't'", "shape [3] of F32 needs 12 bytes but data_offsets span 8"}},
      {"offsets out of range",
       st_file(one("{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}"), f8),
       {"tensor 't'", "run past the end of the data (8 bytes)"}},
      {"offsets reversed",
       st_file(one("{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,0]}"), f8),
       {"tensor 't'", "end before they begin"}},
      {"negative dim",
       st_file(one("{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}"), f8),
       {"tensor 't'", "negative dimension"}},
      {"overflowing shape",
       st_file(one("{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}"), f8),
       {"tensor 't'", "too large"}},
      {"overlap",
       st_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               f8),
       {"tensor 'b'", "overlaps tensor 'a'"}},
      {"gap",
       st_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", f8),
       {"tensor 'a'", "gap of 4 bytes"}},
      {"trailing data",
       st_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", f8),
       {"4 bytes of data after the last tensor"}},
      {"duplicate names",
       st_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               f8),
       {"tensor 'a'", "duplicate tensor name"}},
      {"metadata not strings", st_file("{\"__metadata__\":{\"step\":5}}", ""),
       {"__metadata__ value of 'step' is not a string"}},
      {"float offsets",
       st_file(one("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]}"), f8),
       {"tensor 't'", "data_offsets must hold non-negative integers"}},
  };
  TempDir dir;
  eve::test::check_hostile(dir.path(), "bad.safetensors", cases,
                           [](const std::string& p) { SafetensorsReader r(p); });
  expect_error([&] { SafetensorsReader r(dir.path()); }, {"not a regular file"});
}

TEST(Safetensors, EmptyFileWithNoTensorsIsValid) {
  TempDir dir;
  std::string p = dir.file("e.safetensors");
  eve::io::write_safetensors(p, {});
  SafetensorsReader r(p);
  EXPECT_TRUE(r.tensors().empty());
  EXPECT_TRUE(r.metadata().empty());
}

TEST(SafetensorsInterop, NumpyWrittenFileReadsBackExactly) {
  TempDir dir;
  std::string out;
  ASSERT_EQ(eve::test::run_reference("safetensors_interop.py", "write", dir.path(), &out), 0)
      << out;
  auto manifest = eve::io::read_json(dir.file("manifest.json"));
  SafetensorsReader r(dir.file("model.safetensors"));
  ASSERT_EQ(r.tensors().size(), manifest["tensors"].size());
  for (auto& [name, want] : manifest["tensors"].items()) {
    SCOPED_TRACE(name);
    const TensorView* t = r.find(name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(eve::io::dtype_name(t->dtype), want["dtype"].get<std::string>());
    EXPECT_EQ(t->shape, want["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(to_hex(t->data, t->nbytes), want["hex"].get<std::string>());
  }
  EXPECT_EQ(r.metadata(), (manifest["metadata"].get<std::map<std::string, std::string>>()));
  // File order = data order, as the script wrote them.
  EXPECT_EQ(r.tensors().front().name, "encoder.layer.0.weight");
  EXPECT_EQ(r.tensors().back().name, "empty");
}

TEST(SafetensorsInterop, OurFileReadsBackInPython) {
  TempDir dir;
  std::vector<float> w = {0.5f, -1.f, 3.25f, 1e-40f};
  std::vector<uint16_t> bf = {0x3F80, 0xC040};
  std::vector<int32_t> ids = {-5, 7, 2147483647};
  std::vector<int64_t> big = {-9000000000000000000};
  std::vector<TensorView> ts = {{"w", DType::f32, {2, 2}, w.data(), 16},
                                {"bf", DType::bf16, {2}, bf.data(), 4},
                                {"ids", DType::i32, {3}, ids.data(), 12},
                                {"big", DType::i64, {1, 1}, big.data(), 8}};
  std::map<std::string, std::string> meta = {{"note", "caf\xc3\xa9"}, {"step", "12"}};
  eve::io::write_safetensors(dir.file("model.safetensors"), ts, meta);
  eve::io::json manifest;
  manifest["metadata"] = meta;
  for (const auto& t : ts)
    manifest["tensors"][t.name] = {{"dtype", eve::io::dtype_name(t.dtype)},
                                   {"shape", t.shape},
                                   {"hex", to_hex(t.data, t.nbytes)}};
  eve::io::write_file_atomic(dir.file("manifest.json"), manifest.dump());
  std::string out;
  EXPECT_EQ(eve::test::run_reference("safetensors_interop.py", "check", dir.path(), &out), 0)
      << out;
  EXPECT_NE(out.find("checked 4 tensors, 0 bad"), std::string::npos) << out;
}

}  // namespace
