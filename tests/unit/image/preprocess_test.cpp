#include <gtest/gtest.h>

#include "eve/image/preprocess.h"

namespace {

TEST(Preprocess, ChwPlanesAndRange) {
  eve::image::Image img(2, 1);
  const uint8_t px[] = {0, 255, 51, 255, 0, 204};
  std::copy(std::begin(px), std::end(px), img.pixels.begin());
  float out[6];
  eve::image::to_chw_normalized(img, out);
  // R plane, G plane, B plane; 0 -> -1, 255 -> 1.
  EXPECT_FLOAT_EQ(out[0], -1.0f);
  EXPECT_FLOAT_EQ(out[1], 1.0f);
  EXPECT_FLOAT_EQ(out[2], 1.0f);
  EXPECT_FLOAT_EQ(out[3], -1.0f);
  EXPECT_NEAR(out[4], 51 / 127.5 - 1, 1e-6);
  EXPECT_NEAR(out[5], 204 / 127.5 - 1, 1e-6);
}

TEST(Preprocess, EvalTransformResizesToSquare) {
  eve::image::Image img(8, 4);
  std::fill(img.pixels.begin(), img.pixels.end(), 255);
  std::vector<float> out(3 * 6 * 6, 0.f);
  eve::image::eval_transform(img, 6, out.data());
  for (float v : out) EXPECT_NEAR(v, 1.0f, 1e-6);  // a flat image stays flat
}

}  // namespace
