#include <gtest/gtest.h>

#include <chrono>

#include "eve/image/codec.h"
#include "common/image_test_util.h"

using namespace eve;
using namespace eve::testutil;
using image::Failure;

namespace {

void expect_same_as_pil(const TempDir& dir, const std::string& file, int tolerance = 0);

image::Failure failure_of(const std::string& bytes, const image::DecodeOptions& opt = {}) {
  try {
    image::decode(bytes, opt);
  } catch (const image::ImageError& e) {
    return e.reason();
  }
  ADD_FAILURE() << "decoded without error";
  return Failure::missing;
}

std::string sample_jpeg(int w = 64, int h = 48) {
  return image::encode_jpeg(test_pattern(w, h));
}

// Offset of the SOF0/SOF2 segment marker.
size_t find_sof(const std::string& j) {
  for (size_t i = 2; i + 1 < j.size(); ++i)
    if (static_cast<uint8_t>(j[i]) == 0xFF &&
        (static_cast<uint8_t>(j[i + 1]) == 0xC0 || static_cast<uint8_t>(j[i + 1]) == 0xC2))
      return i;
  return std::string::npos;
}

uint32_t crc32(const std::string& s, size_t from, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = from; i < from + n; ++i) {
    c ^= static_cast<uint8_t>(s[i]);
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put_be32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>(v >> (24 - 8 * i));
}

// Pillow makes each kind of input, decodes it (exif_transpose + convert RGB); we decode
// the same file and compare.
void expect_same_as_pil(const TempDir& dir, const std::vector<std::string>& kinds) {
  std::string cmds = "many";
  for (const auto& k : kinds) cmds += " \"make " + k + " " + (dir / k) + "\" \"decode " + (dir / k) + " " + (dir / (k + ".ppm")) + "\"";
  ASSERT_TRUE(pil(cmds));
  for (const auto& k : kinds) expect_same_as_pil(dir, k);
}

// Compares our decode of `file` with Pillow's decode already in file.ppm.
void expect_same_as_pil(const TempDir& dir, const std::string& file, int tolerance) {
  image::Image want = read_ppm(dir / (file + ".ppm"));
  image::Image got = image::decode(read_bytes(dir / file));
  ASSERT_EQ(got.width, want.width) << file;
  ASSERT_EQ(got.height, want.height) << file;
  EXPECT_LE(max_abs_diff(got, want), tolerance) << file;
}

}  // namespace

TEST(ImageCodec, DecodesLikePillow) {
  TempDir dir("codec");
  expect_same_as_pil(dir, std::vector<std::string>{"rgb.jpg", "gray.jpg", "cmyk.jpg", "rgba.png", "palette.png"});
}

TEST(ImageCodec, AppliesEveryExifOrientation) {
  TempDir dir("exif");
  std::vector<std::string> kinds;
  for (int o = 2; o <= 8; ++o) kinds.push_back("exif" + std::to_string(o) + ".jpg");
  expect_same_as_pil(dir, kinds);
  for (int o = 2; o <= 8; ++o) {
    std::string kind = "exif" + std::to_string(o) + ".jpg";
    image::DecodeInfo info;
    image::Image img = image::decode(read_bytes(dir / kind), {}, &info);
    EXPECT_EQ(info.orientation, o);
    EXPECT_EQ(img.width, o >= 5 ? 23 : 37);
  }
}

// Pillow opens 16-bit grey as mode "I" and convert("RGB") clips it: 0x1234 becomes 255.
TEST(ImageCodec, SixteenBitGreyPngIsClippedLikePillow) {
  TempDir dir("png16");
  ASSERT_TRUE(pil("many \"make gray16.png " + (dir / "g.png") + "\" \"decode " + (dir / "g.png") + " " +
                  (dir / "g.png.ppm") + "\""));
  image::Image img = image::decode(read_bytes(dir / "g.png"));
  ASSERT_EQ(img.width, 37);
  EXPECT_EQ(img.pixels[0], 255);
  EXPECT_EQ(img.pixels[3 * 36 + 2], 255);
  expect_same_as_pil(dir, "g.png");
}

TEST(ImageCodec, EncodeDecodeRoundTrip) {
  image::Image in(40, 30);
  for (int y = 0; y < 30; ++y)
    for (int x = 0; x < 40; ++x) {
      uint8_t* p = in.at(x, y);
      p[0] = static_cast<uint8_t>(x * 6);
      p[1] = static_cast<uint8_t>(y * 8);
      p[2] = 128;
    }
  std::string jpg = image::encode_jpeg(in);
  EXPECT_EQ(image::detect_format(jpg), image::Format::jpeg);
  image::Image out = image::decode(jpg);
  ASSERT_EQ(out.width, 40);
  ASSERT_EQ(out.height, 30);
  EXPECT_LE(max_abs_diff(in, out), 6);
  EXPECT_EQ(image::encode_jpeg(in), jpg) << "encoding must be deterministic";
  EXPECT_LT(image::encode_jpeg(in, {50}).size(), jpg.size());
  EXPECT_THROW(image::encode_jpeg(in, {0}), UsageError);
}

TEST(ImageCodec, DctScalingKeepsShorterSideAboveTarget) {
  std::string jpg = sample_jpeg(640, 480);
  image::DecodeOptions opt;
  image::DecodeInfo info;
  opt.min_short_side = 224;
  image::Image img = image::decode(jpg, opt, &info);
  EXPECT_EQ(info.scale_denom, 2);
  EXPECT_EQ(img.width, 320);
  EXPECT_EQ(img.height, 240);
  opt.min_short_side = 100;
  img = image::decode(jpg, opt, &info);
  EXPECT_EQ(info.scale_denom, 4);
  EXPECT_EQ(img.height, 120);
  opt.min_short_side = 300;  // less than 2x smaller: full decode
  img = image::decode(jpg, opt, &info);
  EXPECT_EQ(info.scale_denom, 1);
  EXPECT_EQ(img.height, 480);
  int w = 0, h = 0;
  image::probe(jpg, w, h);
  EXPECT_EQ(w, 640);
  EXPECT_EQ(h, 480);
}

TEST(ImageCodec, ClassifiesBrokenInputs) {
  std::string jpg = sample_jpeg();
  EXPECT_EQ(failure_of(""), Failure::empty);
  EXPECT_EQ(failure_of("hello, this is text\n"), Failure::not_an_image);
  EXPECT_EQ(failure_of("GIF89a........"), Failure::unsupported);
  EXPECT_EQ(failure_of(jpg.substr(0, jpg.size() / 2)), Failure::truncated);
  EXPECT_EQ(failure_of(jpg.substr(0, 40)), Failure::truncated);
  // A marker with an impossible segment length right after SOI.
  std::string bad_marker = jpg;
  bad_marker.replace(2, 4, std::string("\xFF\xC0\x00\x01", 4));
  EXPECT_EQ(failure_of(bad_marker), Failure::corrupt);
  // Damaged entropy data: libjpeg-turbo still produces pixels, with only a warning.
  std::string damaged = jpg;
  damaged[jpg.size() / 2] = 0;
  damaged[jpg.size() / 2 + 1] = 0x5a;
  EXPECT_EQ(failure_of(damaged), Failure::damaged);
  try {
    image::decode(damaged);
  } catch (const image::ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("Corrupt JPEG data"), std::string::npos) << e.what();
  }
  // Junk before EOI is damage too.
  std::string junk = jpg;
  junk.insert(junk.size() - 2, "\xFF\xD0junk");
  EXPECT_EQ(failure_of(junk), Failure::damaged);
}

TEST(ImageCodec, RefusesAbsurdHeadersBeforeDecoding) {
  std::string jpg = sample_jpeg();
  size_t sof = find_sof(jpg);
  ASSERT_NE(sof, std::string::npos);
  jpg[sof + 5] = jpg[sof + 7] = static_cast<char>(0xFF);  // 65xxx x 65xxx
  jpg[sof + 6] = jpg[sof + 8] = static_cast<char>(0xDC);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(failure_of(jpg), Failure::too_large);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
  image::DecodeOptions small;
  small.max_pixels = 64 * 48 - 1;
  EXPECT_EQ(failure_of(sample_jpeg(), small), Failure::too_large);

  TempDir dir("bigpng");
  ASSERT_TRUE(pil("make rgba.png " + (dir / "a.png")));
  std::string png = read_bytes(dir / "a.png");
  put_be32(png, 16, 40000);  // IHDR width/height, then a valid CRC
  put_be32(png, 20, 40000);
  put_be32(png, 29, crc32(png, 12, 17));
  EXPECT_EQ(failure_of(png), Failure::too_large);
}

TEST(ImageCodec, BrokenPngs) {
  TempDir dir("badpng");
  ASSERT_TRUE(pil("make rgba.png " + (dir / "a.png")));
  std::string png = read_bytes(dir / "a.png");
  EXPECT_EQ(failure_of(png.substr(0, png.size() - 30)), Failure::truncated);
  std::string flipped = png;
  flipped[png.size() / 2] = static_cast<char>(flipped[png.size() / 2] ^ 0x55);
  EXPECT_EQ(failure_of(flipped), Failure::corrupt);
}
