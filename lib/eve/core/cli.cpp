#include "eve/core/cli.h"

#include <exception>
#include <iostream>
#include <new>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/signals.h"
#include "eve/core/version.h"

namespace eve::cli {

void add_common(CLI::App& app, CommonOptions& common, ProgramKind kind,
                const std::string& version_extra) {
  const char* group = "Common";
  app.set_version_flag("--version", version_line(app.get_name(), version_extra),
                       "Print the version and build information, then exit");
  app.add_option("--threads", common.threads, "Worker threads (0 = all cores)")
      ->envname("EVE_THREADS")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str()
      ->group(group);
  app.add_option("--seed", common.seed, "Random seed")
      ->envname("EVE_SEED")
      ->capture_default_str()
      ->group(group);
  if (kind == kTorch) {
    app.add_option("--device", common.device, "Compute device: auto, cpu, cuda or cuda:N")
        ->envname("EVE_DEVICE")
        ->capture_default_str()
        ->group(group);
    app.add_option("--precision", common.precision,
                   "fp32, or bf16: forward passes under bfloat16 autocast (weights, optimiser state "
                   "and losses stay float32)")
        ->envname("EVE_PRECISION")
        ->capture_default_str()
        ->check(CLI::Validator(
            [](std::string& v) { return v == "fp32" || v == "bf16" ? std::string() : "expected fp32 or bf16, got " + v; },
            "fp32|bf16"))
        ->group(group);
    app.add_flag("--deterministic-routing", common.deterministic_routing,
                 "Models with compat official: no Gumbel noise on the second expert at inference "
                 "(the released code draws it even in evaluation); every other released behaviour "
                 "is kept. compat eve models always route deterministically at inference")
        ->envname("EVE_DETERMINISTIC_ROUTING")
        ->group(group);
    app.add_flag("--no-tf32", common.no_tf32,
                 "GPUs with --precision fp32: keep matrix products and convolutions in full "
                 "float32 instead of TF32 tensor cores (10-bit mantissa inputs, float32 sums)")
        ->envname("EVE_NO_TF32")
        ->group(group);
  }
  app.add_flag("-q,--quiet", common.quiet, "Only errors on stderr")->group(group);
  app.add_flag("-v,--verbose", common.verbose, "Debug messages on stderr")->group(group);
  // Subcommands accept the common options after their name too.
  app.fallthrough();
}

int run(CLI::App& app, int argc, char** argv, const CommonOptions& common,
        const std::function<int()>& body) {
  log::set_program(app.get_name());
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::cerr << app.get_name() << ": error: " << e.what() << " (see --help)\n";
    return kExitUsage;
  }
  if (common.quiet) log::set_level(log::Level::error);
  if (common.verbose) log::set_level(log::Level::debug);
  signals::install();
  try {
    return body();
  } catch (const Interrupted& e) {
    // A clean stop is not an error: its message says where the work stopped.
    log::info("{}", e.what());
    return e.exit_code();
  } catch (const Error& e) {
    log::error("{}", e.what());
    return e.exit_code();
  } catch (const std::bad_alloc&) {
    log::error("out of memory");
    return kExitRuntime;
  } catch (const std::exception& e) {
    log::error("{}", describe_exception(e));
    return kExitRuntime;
  }
}

}  // namespace eve::cli
