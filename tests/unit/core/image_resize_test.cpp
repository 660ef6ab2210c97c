#include <gtest/gtest.h>

#include "eve/core/error.h"
#include "eve/image/resize.h"
#include "image_test_util.h"

using namespace eve;
using namespace eve::testutil;

namespace {

// Our resize against Pillow's Image.resize(BICUBIC) on the same pixels.
void expect_pil_parity(int w, int h, int ow, int oh) {
  TempDir dir("resize");
  image::Image in = test_pattern(w, h, static_cast<uint32_t>(w * 31 + h));
  write_ppm(dir / "in.ppm", in);
  ASSERT_TRUE(pil("resize " + (dir / "in.ppm") + " " + std::to_string(ow) + " " +
                  std::to_string(oh) + " " + (dir / "out.ppm")));
  image::Image want = read_ppm(dir / "out.ppm");
  image::Image got = image::resize_bicubic(in, ow, oh);
  ASSERT_EQ(got.width, ow);
  ASSERT_EQ(got.height, oh);
  EXPECT_LE(max_abs_diff(got, want), 1) << w << "x" << h << " -> " << ow << "x" << oh;
}

}  // namespace

TEST(ImageResize, MatchesPillowBicubicDownscale) {
  expect_pil_parity(640, 480, 298, 224);   // the common shorter-side case
  expect_pil_parity(97, 61, 13, 7);        // large factor, odd sizes
  expect_pil_parity(50, 40, 49, 39);       // tiny factor
}

TEST(ImageResize, MatchesPillowBicubicUpscaleAndOneAxis) {
  expect_pil_parity(17, 11, 40, 29);       // upscale: overshoot must clamp
  expect_pil_parity(64, 48, 64, 20);       // vertical only
  expect_pil_parity(64, 48, 21, 48);       // horizontal only
  expect_pil_parity(5, 3, 1, 1);
}

TEST(ImageResize, SameSizeIsIdentity) {
  image::Image in = test_pattern(9, 7);
  EXPECT_EQ(image::resize_bicubic(in, 9, 7).pixels, in.pixels);
}

TEST(ImageResize, RejectsEmptyTargets) {
  image::Image in = test_pattern(9, 7);
  EXPECT_THROW(image::resize_bicubic(in, 0, 5), Error);
}

TEST(ImageResize, ShorterSideSizing) {
  int w, h;
  image::shorter_side_size(640, 480, 224, w, h);
  EXPECT_EQ(w, 298);
  EXPECT_EQ(h, 224);
  image::shorter_side_size(480, 640, 224, w, h);
  EXPECT_EQ(w, 224);
  EXPECT_EQ(h, 298);
  image::shorter_side_size(300, 200, 512, w, h);  // never upscales
  EXPECT_EQ(w, 300);
  EXPECT_EQ(h, 200);
  image::shorter_side_size(640, 480, 0, w, h);    // 0 keeps originals
  EXPECT_EQ(w, 640);
  EXPECT_EQ(h, 480);
}
