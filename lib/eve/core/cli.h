// What every program's main shares: the common option group, parsing, and the mapping of
// errors to one stderr line and an exit code. Mains stay thin:
//
//   int main(int argc, char** argv) {
//     CLI::App app{"...", "eve-score"};
//     eve::cli::CommonOptions common;
//     eve::cli::add_common(app, common, eve::cli::kTorchFree);
//     ... add options bound to a lib Options struct ...
//     return eve::cli::run(app, argc, argv, common, [&] { return eve::score::run(opts); });
//   }
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace eve::cli {

struct CommonOptions {
  int threads = 0;          // 0 = all cores; also sets at::set_num_threads in torch programs
  uint64_t seed = 0;        // torch programs and anything random
  std::string device = "auto";  // torch programs: auto|cpu|cuda|cuda:N
  std::string precision = "fp32";  // torch programs: fp32|bf16 (autocast)
  bool deterministic_routing = false;  // torch programs: no routing noise at inference
  bool no_tf32 = false;  // torch programs: full float32 matrix products on GPUs with fp32
  bool quiet = false;
  bool verbose = false;
  double progress_every = 30;  // seconds between plain progress lines off a terminal (0 = none)
};

enum ProgramKind { kTorchFree = 0, kTorch = 1 };

// Adds --threads, --seed, --progress-every, --quiet, --verbose (and --device, --precision,
// --deterministic-routing, --no-tf32 for torch programs) in the
// "Common" group, each also read from an EVE_* environment variable, plus --version.
void add_common(CLI::App& app, CommonOptions& common, ProgramKind kind,
                const std::string& version_extra = {});

// Parses argv, applies logging and progress options, installs signal handlers, runs body
// and maps errors: CLI parse errors and eve::UsageError -> 2, eve::Error -> its
// exit_code(), anything else -> 1. Every error is printed as one line "program: error: ...";
// parse errors in the words of parse_error_message.
int run(CLI::App& app, int argc, char** argv, const CommonOptions& common,
        const std::function<int()>& body);

// Number checks whose failures say what the option accepts, in the option's own words:
// "--k: must be at least 1, got 0". `min_means` names what the smallest value does when it
// is a special case: at_least(0, "all cores") -> "must be 0 (all cores) or more, got -1".
CLI::Validator at_least(double min, const std::string& min_means = {});
// lo <= value <= hi: "must be between 0 and 1, got 2".
CLI::Validator between(double lo, double hi);

// Keeps an old spelling of an option working for one release: `old_names` (e.g. "--ques", or
// "-m,--model") becomes a hidden option whose values go to `target` as if it had been given,
// so target's checks and `required` still apply. After parsing, run() prints one note per old
// spelling used, naming the new one. Hidden options are left out of --help and of the
// did-you-mean suggestions.
CLI::Option* add_deprecated_alias(CLI::App* app, const std::string& old_names, CLI::Option* target);

// A two-way switch: --NAME turns it on, --no-NAME off, and `set` receives the choice (only
// when one of them is given, so an unset switch keeps whatever default the caller has,
// e.g. a recipe's). The older form --NAME 0|1 still works, with a deprecation note.
void add_switch(CLI::App* app, const std::string& name, const std::string& description,
                const std::function<void(bool)>& set);

// The number of single-character insertions, deletions and substitutions that turn a into b.
size_t edit_distance(std::string_view a, std::string_view b);
// The candidate nearest to `word` when it is near enough to be a typo of it (about a third
// of its letters, at least one edit), else "". Between equally near candidates, one with
// the same first letter wins, then the earlier one.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

// What a parse error of `app` (after app.parse threw it) tells the user: an unknown command
// named with the commands there are, an unknown option with the nearest known one, anything
// else as the parser said it.
std::string parse_error_message(const CLI::App& app, const CLI::ParseError& e);

// The --help layout of every program (installed by add_common): option names without
// CLI11's flag defaults ("--no-flip{false}"), then the description followed by what the
// value must be, "(default: X)" and "(required)".
class HelpFormatter : public CLI::Formatter {
 public:
  std::string make_option_name(const CLI::Option* opt, bool is_positional) const override;
  std::string make_option_opts(const CLI::Option* opt) const override;
  std::string make_option_desc(const CLI::Option* opt) const override;
};

}  // namespace eve::cli
