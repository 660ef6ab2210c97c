#include <gtest/gtest.h>
#include <torch/torch.h>

#include "eve/model/runtime.h"

using eve::model::Precision;

TEST(RuntimeTf32, OnlyCudaFp32WithoutTheFlag) {
  EXPECT_TRUE(eve::model::tf32_wanted("cuda:0", Precision::fp32, false));
  EXPECT_TRUE(eve::model::tf32_wanted("cuda:3", Precision::fp32, false));
  EXPECT_FALSE(eve::model::tf32_wanted("cuda:0", Precision::fp32, true));
  EXPECT_FALSE(eve::model::tf32_wanted("cuda:0", Precision::bf16, false));
  EXPECT_FALSE(eve::model::tf32_wanted("cpu", Precision::fp32, false));
}

TEST(RuntimeTf32, CpuRunTurnsBothSwitchesOff) {
  // libtorch starts with cuDNN's TF32 on: a CPU run (or --no-tf32) must leave both off.
  at::globalContext().setAllowTF32CuBLAS(true);
  at::globalContext().setAllowTF32CuDNN(true);
  ASSERT_TRUE(eve::model::tf32_enabled());
  eve::cli::CommonOptions common;
  common.device = "cpu";
  common.threads = at::get_num_threads();
  EXPECT_EQ(eve::model::init_runtime(common), "cpu");
  EXPECT_FALSE(eve::model::tf32_enabled());
  EXPECT_FALSE(at::globalContext().allowTF32CuDNN());
}
