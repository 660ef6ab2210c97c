#include <gtest/gtest.h>

#include "eve/core/error.h"
#include "eve/image/resize.h"
#include "common/image_test_util.h"

using namespace eve;
using namespace eve::testutil;

namespace {

struct Case {
  int w, h, ow, oh;
};

// Our resize against Pillow's Image.resize(BICUBIC) on the same pixels (one Pillow
// process for all cases).
void expect_pil_parity(const std::vector<Case>& cases) {
  TempDir dir("resize");
  std::string cmds = "many";
  std::vector<image::Image> inputs;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    inputs.push_back(test_pattern(c.w, c.h, static_cast<uint32_t>(c.w * 31 + c.h)));
    const std::string n = std::to_string(i);
    write_ppm(dir / ("in" + n + ".ppm"), inputs.back());
    cmds += " \"resize " + (dir / ("in" + n + ".ppm")) + " " + std::to_string(c.ow) + " " + std::to_string(c.oh) +
            " " + (dir / ("out" + n + ".ppm")) + "\"";
  }
  ASSERT_TRUE(pil(cmds));
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    image::Image want = read_ppm(dir / ("out" + std::to_string(i) + ".ppm"));
    image::Image got = image::resize_bicubic(inputs[i], c.ow, c.oh);
    ASSERT_EQ(got.width, c.ow);
    ASSERT_EQ(got.height, c.oh);
    EXPECT_LE(max_abs_diff(got, want), 1) << c.w << "x" << c.h << " -> " << c.ow << "x" << c.oh;
  }
}

}  // namespace

TEST(ImageResize, MatchesPillowBicubicDownscale) {
  expect_pil_parity({{640, 480, 298, 224},   // the common shorter-side case
                     {97, 61, 13, 7},        // large factor, odd sizes
                     {50, 40, 49, 39}});     // tiny factor
}

TEST(ImageResize, MatchesPillowBicubicUpscaleAndOneAxis) {
  expect_pil_parity({{17, 11, 40, 29},      // upscale: overshoot must clamp
                     {64, 48, 64, 20},       // vertical only
                     {64, 48, 21, 48},       // horizontal only
                     {5, 3, 1, 1}});
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
