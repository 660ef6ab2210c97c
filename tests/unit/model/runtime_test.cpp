// The process-wide runtime of the torch programs (model/runtime.h): the precision flag, the
// build line, what init_runtime records and refuses, TF32, host memory reuse, and the
// autocast scopes that bf16 runs depend on.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "eve/core/error.h"
#include "eve/model/runtime.h"

namespace {

using eve::model::Precision;

// The dtype a float32 matrix product gets on this thread: bf16 exactly when CPU autocast
// (with bf16) is in force.
torch::ScalarType product_dtype() {
  torch::Tensor a = torch::ones({2, 2});
  return torch::matmul(a, a).scalar_type();
}

eve::cli::CommonOptions cpu_options() {
  eve::cli::CommonOptions common;
  common.device = "cpu";
  common.threads = at::get_num_threads();
  return common;
}

TEST(Runtime, PrecisionNamesParseAndPrint) {
  EXPECT_EQ(eve::model::parse_precision("fp32"), Precision::fp32);
  EXPECT_EQ(eve::model::parse_precision("bf16"), Precision::bf16);
  EXPECT_STREQ(eve::model::precision_name(Precision::fp32), "fp32");
  EXPECT_STREQ(eve::model::precision_name(Precision::bf16), "bf16");
  try {
    eve::model::parse_precision("fp16");
    ADD_FAILURE() << "fp16 was accepted";
  } catch (const eve::UsageError& e) {
    EXPECT_EQ(std::string(e.what()), "--precision fp16: expected fp32 or bf16");
  }
}

TEST(Runtime, BuildInfoNamesLibtorchAndCuda) {
  const std::string want = "libtorch " + std::to_string(TORCH_VERSION_MAJOR) + "." +
                           std::to_string(TORCH_VERSION_MINOR) + "." +
                           std::to_string(TORCH_VERSION_PATCH) + ", CUDA ";
#ifdef EVE_CUDA
  EXPECT_EQ(eve::model::build_info(), want + "yes");
#else
  EXPECT_EQ(eve::model::build_info(), want + "no");
  EXPECT_FALSE(eve::model::cuda_available());
#endif
  EXPECT_EQ(eve::model::cuda_available(), torch::cuda::is_available());
}

TEST(Runtime, InitRecordsPrecisionAndRoutingAndRefusesBadDevices) {
  eve::cli::CommonOptions common = cpu_options();
  common.precision = "bf16";
  common.deterministic_routing = true;
  EXPECT_EQ(eve::model::init_runtime(common), "cpu");
  EXPECT_EQ(eve::model::run_precision(), Precision::bf16);
  EXPECT_TRUE(eve::model::deterministic_routing_requested());
  // Back to the defaults every other test of this process expects.
  common.precision = "fp32";
  common.deterministic_routing = false;
  EXPECT_EQ(eve::model::init_runtime(common), "cpu");
  EXPECT_EQ(eve::model::run_precision(), Precision::fp32);
  EXPECT_FALSE(eve::model::deterministic_routing_requested());

  common.device = "gpu";
  EXPECT_THROW(eve::model::init_runtime(common), eve::UsageError);
  common.device = "cpu";
  common.precision = "half";
  EXPECT_THROW(eve::model::init_runtime(common), eve::UsageError);
  EXPECT_EQ(eve::model::run_precision(), Precision::fp32);  // a refused call records nothing
  if (!torch::cuda::is_available()) {
    common.precision = "fp32";
    common.device = "cuda:0";
    EXPECT_THROW(eve::model::init_runtime(common), eve::UsageError);
  }
}

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
  EXPECT_EQ(eve::model::init_runtime(cpu_options()), "cpu");
  EXPECT_FALSE(eve::model::tf32_enabled());
  EXPECT_FALSE(at::globalContext().allowTF32CuDNN());
}

TEST(Runtime, FreedHostMemoryIsKeptForReuse) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if ((tunables && std::strstr(tunables, "glibc.malloc.")) || std::getenv("EVE_MALLOC"))
    GTEST_SKIP() << "malloc configured by the environment";
  ASSERT_TRUE(eve::model::retain_host_memory());
  // A tensor far above glibc's default mmap threshold (32 MiB at most) comes from the heap,
  // and once freed its memory stays there, where the next step's tensors find it without
  // page faults.
  const size_t mapped_before = mallinfo2().hblkhd;
  size_t heap_alive = 0;
  {
    torch::Tensor big = torch::full({16 << 20}, 1.0f);
    EXPECT_EQ(big.sum().item<float>(), float(16 << 20));
    EXPECT_LT(mallinfo2().hblkhd, mapped_before + (size_t{64} << 20)) << "the tensor was mapped";
    heap_alive = mallinfo2().arena;
  }
  EXPECT_GE(mallinfo2().arena, heap_alive) << "the heap was trimmed";
#else
  GTEST_SKIP() << "not glibc 2.33 or later";
#endif
}

TEST(Autocast, Fp32ChangesNothingAndBf16CastsProductsOnTheDevicesType) {
  ASSERT_EQ(product_dtype(), torch::kFloat);
  {
    eve::model::Autocast off(Precision::fp32, "cpu");
    EXPECT_FALSE(eve::model::autocast_state().cpu);
    EXPECT_EQ(product_dtype(), torch::kFloat);
  }
  {
    eve::model::Autocast on(Precision::bf16, "cpu");
    const auto s = eve::model::autocast_state();
    EXPECT_TRUE(s.cpu);
    EXPECT_FALSE(s.cuda);
    EXPECT_EQ(s.cpu_dtype, static_cast<int>(torch::kBFloat16));
    EXPECT_EQ(product_dtype(), torch::kBFloat16);
    {
      eve::model::Autocast inner(Precision::bf16, "cpu");  // nesting keeps it on
      EXPECT_EQ(product_dtype(), torch::kBFloat16);
    }
    EXPECT_EQ(product_dtype(), torch::kBFloat16);
  }
  EXPECT_FALSE(eve::model::autocast_state().cpu);
  EXPECT_EQ(product_dtype(), torch::kFloat);
  {
    // A CUDA device switches CUDA's autocast and leaves the CPU's alone.
    eve::model::Autocast gpu(Precision::bf16, "cuda:0");
    const auto s = eve::model::autocast_state();
    EXPECT_TRUE(s.cuda);
    EXPECT_FALSE(s.cpu);
    EXPECT_EQ(s.cuda_dtype, static_cast<int>(torch::kBFloat16));
  }
  EXPECT_FALSE(eve::model::autocast_state().cuda);
}

TEST(Autocast, NoAutocastRunsInFloat32InsideAScope) {
  eve::model::Autocast on(Precision::bf16, "cpu");
  {
    eve::model::NoAutocast full;
    EXPECT_FALSE(eve::model::autocast_state().cpu);
    EXPECT_EQ(product_dtype(), torch::kFloat);
  }
  EXPECT_TRUE(eve::model::autocast_state().cpu);
  EXPECT_EQ(product_dtype(), torch::kBFloat16);
}

TEST(Autocast, RecordedStateAppliesOnAnotherThread) {
  eve::model::AutocastState recorded;
  {
    eve::model::Autocast on(Precision::bf16, "cpu");
    recorded = eve::model::autocast_state();
  }
  // Autocast is per thread: a fresh thread starts without it, and AutocastAs gives it the
  // recorded settings for its scope only (as a checkpointed layer's backward needs).
  torch::ScalarType plain = torch::kDouble, applied = torch::kDouble, after = torch::kDouble;
  std::thread worker([&] {
    plain = product_dtype();
    {
      eve::model::AutocastAs as(recorded);
      applied = product_dtype();
    }
    after = product_dtype();
  });
  worker.join();
  EXPECT_EQ(plain, torch::kFloat);
  EXPECT_EQ(applied, torch::kBFloat16);
  EXPECT_EQ(after, torch::kFloat);
}

}  // namespace
