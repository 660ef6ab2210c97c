// Training augmentation: crop sampling statistics and bounds, determinism per seed, and
// the pixel arithmetic of each RandAugment operation on hand-checked images.
#include <gtest/gtest.h>

#include <cmath>

#include "eve/core/error.h"
#include "eve/image/augment.h"

namespace {

using eve::Rng;
using eve::image::Image;

Image gradient(int w, int h) {
  Image img(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.at(x, y);
      p[0] = static_cast<uint8_t>(x * 7 + y);
      p[1] = static_cast<uint8_t>(y * 5);
      p[2] = static_cast<uint8_t>((x * y) & 255);
    }
  return img;
}

TEST(ImageAugment, CropBoxesRespectScaleRatioAndBounds) {
  Rng rng(1);
  double area_sum = 0;
  const int n = 2000;
  for (int i = 0; i < n; ++i) {
    auto b = eve::image::random_resized_crop_box(200, 150, 0.5, 1.0, 3.0 / 4, 4.0 / 3, rng);
    ASSERT_GE(b.x, 0);
    ASSERT_GE(b.y, 0);
    ASSERT_LE(b.x + b.width, 200);
    ASSERT_LE(b.y + b.height, 150);
    const double frac = double(b.width) * b.height / (200.0 * 150.0);
    const double ratio = double(b.width) / b.height;
    // Rounding of w and h moves the area and ratio a little off the sampled values.
    ASSERT_GE(frac, 0.48);
    ASSERT_LE(frac, 1.0);
    ASSERT_GE(ratio, 0.74);
    ASSERT_LE(ratio, 1.35);
    area_sum += frac;
  }
  // Accepted areas concentrate below the mean of U(0.5, 1) because large ones fail to fit.
  EXPECT_GT(area_sum / n, 0.6);
  EXPECT_LT(area_sum / n, 0.76);
}

TEST(ImageAugment, FallbackIsCentredAndClamped) {
  // A 1000x10 strip never fits a box with ratio <= 4/3 and area >= half: centre crop 13x10.
  Rng rng(3);
  auto b = eve::image::random_resized_crop_box(1000, 10, 0.5, 1.0, 3.0 / 4, 4.0 / 3, rng);
  EXPECT_EQ(b.width, 13);
  EXPECT_EQ(b.height, 10);
  EXPECT_EQ(b.x, (1000 - 13) / 2);
  EXPECT_EQ(b.y, 0);
}

TEST(ImageAugment, SameSeedSameImageDifferentSeedDifferent) {
  Image img = gradient(80, 60);
  eve::image::AugmentOptions o;
  o.res = 32;
  o.rand_augment = true;
  Rng a(42, 3, 7), b(42, 3, 7), c(42, 3, 8);
  Image x = eve::image::augment(img, o, a), y = eve::image::augment(img, o, b);
  EXPECT_EQ(x.width, 32);
  EXPECT_EQ(x.height, 32);
  EXPECT_TRUE(x.pixels == y.pixels);
  bool any_diff = false;
  for (int k = 0; k < 8 && !any_diff; ++k) {
    Image z = eve::image::augment(img, o, c);
    any_diff = !(z.pixels == x.pixels);
  }
  EXPECT_TRUE(any_diff);
}

TEST(ImageAugment, FlipAndCrop) {
  Image img = gradient(5, 3);
  Image f = eve::image::hflip(img);
  EXPECT_EQ(f.at(0, 1)[0], img.at(4, 1)[0]);
  EXPECT_TRUE(eve::image::hflip(f).pixels == img.pixels);
  Image c = eve::image::crop(img, {1, 1, 3, 2});
  EXPECT_EQ(c.width, 3);
  EXPECT_EQ(c.at(0, 0)[0], img.at(1, 1)[0]);
  EXPECT_EQ(c.at(2, 1)[2], img.at(3, 2)[2]);
  EXPECT_THROW(eve::image::crop(img, {3, 0, 3, 1}), eve::Error);
}

TEST(ImageAugment, TablesOps) {
  Image img(2, 1);
  uint8_t v[6] = {50, 100, 0, 150, 200, 0};
  std::copy(v, v + 6, img.pixels.begin());
  Image ac = eve::image::auto_contrast(img);
  EXPECT_EQ(ac.at(0, 0)[0], 0);
  EXPECT_EQ(ac.at(1, 0)[0], 255);
  EXPECT_EQ(ac.at(0, 0)[2], 0);  // a constant channel stays as it is
  Image br = eve::image::brightness(img, 1.36);
  EXPECT_EQ(br.at(0, 0)[0], 68);   // floor(50 * 1.36)
  EXPECT_EQ(br.at(1, 0)[1], 255);  // 272 clipped
  Image eq = eve::image::equalize(img);
  EXPECT_EQ(eq.at(0, 0)[0], 0);
  EXPECT_EQ(eq.at(1, 0)[0], 255);
}

TEST(ImageAugment, GeometricOps) {
  Image img = gradient(16, 12);
  // The matrix [[1, 0, -offset], [0, 1, 0]] moves the content by -offset.
  Image t = eve::image::translate_x(img, 7);
  EXPECT_EQ(t.at(2, 4)[0], img.at(9, 4)[0]);
  EXPECT_EQ(t.at(12, 4)[0], 128);  // filled
  Image ty = eve::image::translate_y(img, -3);
  EXPECT_EQ(ty.at(5, 5)[1], img.at(5, 2)[1]);
  EXPECT_EQ(ty.at(5, 1)[1], 128);
  EXPECT_TRUE(eve::image::rotate(img, 0).pixels == img.pixels);
  EXPECT_TRUE(eve::image::shear_x(img, 0).pixels == img.pixels);
  // 180 degrees about the centre (8, 6): (x, y) -> (16 - x, 12 - y).
  Image r = eve::image::rotate(img, 180);
  EXPECT_EQ(r.at(10, 7)[0], img.at(6, 5)[0]);
  // Shear x by 0.5: destination (x + 0.5 y, y) comes from source (x, y).
  Image s = eve::image::shear_x(img, 0.5);
  EXPECT_EQ(s.at(3 + 2, 4)[2], img.at(3, 4)[2]);
  Image sh = eve::image::sharpness(img, 1.0);
  EXPECT_TRUE(sh.pixels == img.pixels);
}

}  // namespace
