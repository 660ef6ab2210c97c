// PNG decoding of every colour type, bit depth, transparency chunk and interlacing against
// Pillow's Image.convert("RGB"). The inputs are written here with libpng, since Pillow
// cannot write several of them (16-bit colour, 2/4-bit grey, Adam7).
#include <png.h>

#include <algorithm>
#include <csetjmp>

#include "eve/image/codec.h"
#include "common/image_test_util.h"

using namespace eve;
using namespace eve::testutil;

namespace {

struct PngKind {
  std::string name;
  int color = PNG_COLOR_TYPE_RGB;
  int depth = 8;
  bool trns = false;
  bool interlaced = false;
};

int channels_of(int color) {
  switch (color) {
    case PNG_COLOR_TYPE_GRAY: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
    default: return 1;  // palette index
  }
}

void append_bytes(png_structp png, png_bytep data, png_size_t n) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), n);
}

void flush_nothing(png_structp) {}

// A 37x23 PNG of kind `k` with pseudo-random samples; 16-bit samples often have a zero
// high byte so that clipping and high-byte rules both show.
std::string write_png(const PngKind& k) {
  const uint32_t w = 37, h = 23;
  const size_t row_bytes = (static_cast<size_t>(w) * channels_of(k.color) * k.depth + 7) / 8;
  std::vector<uint8_t> data(row_bytes * h);
  uint32_t s = 12345u + static_cast<uint32_t>(k.color * 131 + k.depth * 7 + k.trns * 3 + k.interlaced);
  for (size_t i = 0; i < data.size(); ++i) {
    s = s * 1664525u + 1013904223u;
    data[i] = static_cast<uint8_t>(s >> 24);
    if (k.depth == 16 && i % 2 == 0 && (s >> 8) % 3 == 0) data[i] = static_cast<uint8_t>((s >> 12) % 2);
  }
  // Everything that owns memory exists before setjmp, so a libpng error skips no destructor.
  std::string out;
  std::vector<png_color> palette(size_t{1} << std::min(k.depth, 8));
  std::vector<png_byte> palette_alpha(palette.size() / 2 + 1);
  std::vector<png_bytep> rows(h);
  for (uint32_t y = 0; y < h; ++y) rows[y] = data.data() + y * row_bytes;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    ADD_FAILURE() << "libpng could not write " << k.name;
    return {};
  }
  png_set_write_fn(png, &out, append_bytes, flush_nothing);
  png_set_IHDR(png, info, w, h, k.depth, k.color, k.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (k.color == PNG_COLOR_TYPE_PALETTE) {
    for (size_t i = 0; i < palette.size(); ++i)
      palette[i] = {static_cast<png_byte>(i * 37 + 11), static_cast<png_byte>(255 - i * 5), static_cast<png_byte>(i * i)};
    png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
  }
  if (k.trns) {
    png_color_16 colour{};
    const uint16_t max = static_cast<uint16_t>((1u << k.depth) - 1);
    colour.gray = static_cast<png_uint_16>(data[0] & max);
    colour.red = colour.green = colour.blue = static_cast<png_uint_16>(data[0] & max);
    for (size_t i = 0; i < palette_alpha.size(); ++i) palette_alpha[i] = static_cast<png_byte>(i * 255 / palette_alpha.size());
    if (k.color == PNG_COLOR_TYPE_PALETTE)
      png_set_tRNS(png, info, palette_alpha.data(), static_cast<int>(palette_alpha.size()), nullptr);
    else
      png_set_tRNS(png, info, nullptr, 0, &colour);
  }
  png_write_info(png, info);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

std::vector<PngKind> every_kind() {
  std::vector<PngKind> kinds;
  auto add = [&](const std::string& name, int color, int depth, bool trns) {
    for (bool interlaced : {false, true})
      kinds.push_back({name + std::to_string(depth) + (trns ? "-trns" : "") + (interlaced ? "-adam7" : ""), color,
                       depth, trns, interlaced});
  };
  for (int depth : {1, 2, 4, 8, 16})
    for (bool trns : {false, true}) add("grey", PNG_COLOR_TYPE_GRAY, depth, trns);
  for (int depth : {8, 16}) {
    add("greyalpha", PNG_COLOR_TYPE_GRAY_ALPHA, depth, false);
    add("rgb", PNG_COLOR_TYPE_RGB, depth, false);
    add("rgb", PNG_COLOR_TYPE_RGB, depth, true);
    add("rgba", PNG_COLOR_TYPE_RGB_ALPHA, depth, false);
  }
  for (int depth : {1, 2, 4, 8})
    for (bool trns : {false, true}) add("palette", PNG_COLOR_TYPE_PALETTE, depth, trns);
  return kinds;
}

}  // namespace

TEST(ImagePng, EveryColourTypeDecodesLikePillow) {
  TempDir dir("pngkinds");
  const std::vector<PngKind> kinds = every_kind();
  std::string cmds = "many";
  for (const auto& k : kinds) {
    write_bytes(dir / (k.name + ".png"), write_png(k));
    cmds += " \"decode " + (dir / (k.name + ".png")) + " " + (dir / (k.name + ".ppm")) + "\"";
  }
  ASSERT_TRUE(pil(cmds));
  for (const auto& k : kinds) {
    SCOPED_TRACE(k.name);
    const image::Image want = read_ppm(dir / (k.name + ".ppm"));
    image::Image got;
    try {
      got = image::decode(read_bytes(dir / (k.name + ".png")));
    } catch (const image::ImageError& e) {
      ADD_FAILURE() << "not decoded: " << e.what();
      continue;
    }
    ASSERT_EQ(got.width, want.width);
    ASSERT_EQ(got.height, want.height);
    size_t differ = 0, first = 0;
    for (size_t i = 0; i < got.pixels.size(); ++i)
      if (got.pixels[i] != want.pixels[i] && differ++ == 0) first = i;
    EXPECT_EQ(differ, 0u) << "first difference at byte " << first << ": eve " << int(got.pixels[first])
                          << ", Pillow " << int(want.pixels[first]);
  }
}
