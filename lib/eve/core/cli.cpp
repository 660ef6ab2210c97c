#include "eve/core/cli.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <new>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/progress.h"
#include "eve/core/signals.h"
#include "eve/core/version.h"

namespace eve::cli {

void add_common(CLI::App& app, CommonOptions& common, ProgramKind kind,
                const std::string& version_extra) {
  const char* group = "Common";
  app.formatter(std::make_shared<HelpFormatter>());
  app.set_version_flag("--version", version_line(app.get_name(), version_extra),
                       "Print the version and build information, then exit");
  app.add_option("--threads", common.threads, "Worker threads (0 = all cores)")
      ->envname("EVE_THREADS")
      ->check(at_least(0, "all cores"))
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
  app.add_option("--progress-every", common.progress_every,
                 "Seconds between progress lines when stderr is not a terminal (fractions allowed)")
      ->envname("EVE_PROGRESS_EVERY")
      ->check(at_least(0, "no progress lines"))
      ->capture_default_str()
      ->group(group);
  app.add_flag("-q,--quiet", common.quiet, "Only errors on stderr")->group(group);
  app.add_flag("-v,--verbose", common.verbose, "Debug messages on stderr")->group(group);
  // Subcommands accept the common options after their name too.
  app.fallthrough();
}

namespace {

// Old spellings seen while parsing, as notes for stderr. They are printed once parsing has
// succeeded: after a usage error only the error line is shown, and --quiet applies.
std::vector<std::string>& deprecation_notes() {
  static std::vector<std::string> notes;
  return notes;
}

void note_deprecated(const std::string& old_spelling, const std::string& new_spelling) {
  const std::string note =
      old_spelling + " is deprecated and will be removed in the next release: use " + new_spelling;
  auto& notes = deprecation_notes();
  if (std::find(notes.begin(), notes.end(), note) == notes.end()) notes.push_back(note);
}

// "-o,--out" -> "-o/--out": how an option's names read in a sentence.
std::string spelled(const std::string& names) {
  std::string out = names;
  std::replace(out.begin(), out.end(), ',', '/');
  return out;
}

// The name a user is told to use: the first long name ("--out" of "-o,--out").
std::string preferred_name(const CLI::Option* opt) {
  const auto& longs = opt->get_lnames();
  if (!longs.empty()) return "--" + longs.front();
  const auto& shorts = opt->get_snames();
  return shorts.empty() ? opt->get_name() : "-" + shorts.front();
}

}  // namespace

CLI::Option* add_deprecated_alias(CLI::App* app, const std::string& old_names, CLI::Option* target) {
  const std::string old_spelling = spelled(old_names), new_spelling = preferred_name(target);
  CLI::Option* alias = app->add_option(
      old_names,
      [target, old_spelling, new_spelling](const CLI::results_t& values) {
        note_deprecated(old_spelling, new_spelling);
        // As if the target had been given: its own checks, conversion and callback run.
        for (const auto& v : values) target->add_result(v);
        target->run_callback();
        return true;
      },
      "");
  alias->type_size(target->get_type_size_min(), target->get_type_size_max());
  alias->expected(target->get_expected_min(), target->get_expected_max());
  alias->group("");  // hidden
  return alias;
}

void add_switch(CLI::App* app, const std::string& name, const std::string& description,
                const std::function<void(bool)>& set) {
  const std::string on = "--" + name, off = "--no-" + name;
  CLI::Option* yes = app->add_option(
      on,
      [set, on, off](const CLI::results_t& values) {
        if (values.empty() || values.front().empty()) {
          set(true);
          return true;
        }
        // The spelling with a value, kept for one release.
        const std::string& v = values.front();
        bool value = false;
        if (v == "1" || v == "true")
          value = true;
        else if (v != "0" && v != "false")
          throw CLI::ValidationError(on, "takes no value (" + on + " or " + off + "), got " + v);
        note_deprecated(on + " " + v, value ? on : off);
        set(value);
        return true;
      },
      description);
  yes->expected(0, 1);
  CLI::Option* no = app->add_flag_callback(off, [set] { set(false); }, "Turn " + on + " off");
  yes->excludes(no);
  no->excludes(yes);
}

int run(CLI::App& app, int argc, char** argv, const CommonOptions& common,
        const std::function<int()>& body) {
  log::set_program(app.get_name());
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::cerr << app.get_name() << ": error: " << parse_error_message(app, e) << " (see --help)\n";
    return kExitUsage;
  }
  if (common.quiet) log::set_level(log::Level::error);
  if (common.verbose) log::set_level(log::Level::debug);
  for (const auto& note : deprecation_notes()) log::warn("{}", note);
  Progress::set_plain_every(common.progress_every);
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

namespace {

// Whether all of `text` is one number (then in `value`).
bool parse_number(const std::string& text, double& value) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  value = std::strtod(text.c_str(), &end);
  return errno == 0 && end == text.c_str() + text.size();
}

}  // namespace

CLI::Validator at_least(double min, const std::string& min_means) {
  // The help shows the short form; the message says what the smallest value means.
  const std::string help = min_means.empty() ? fmt::format("at least {}", min) : fmt::format("{} or more", min);
  const std::string bound = min_means.empty() ? help : fmt::format("{} ({}) or more", min, min_means);
  return CLI::Validator(
      [min, bound](std::string& text) -> std::string {
        double v = 0;
        if (!parse_number(text, v)) return "must be a number, got '" + text + "'";
        return v >= min ? std::string() : "must be " + bound + ", got " + text;
      },
      help);
}

CLI::Validator between(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        double v = 0;
        if (!parse_number(text, v)) return "must be a number, got '" + text + "'";
        return v >= lo && v <= hi ? std::string() : fmt::format("must be between {} and {}, got {}", lo, hi, text);
      },
      fmt::format("{} to {}", lo, hi));
}

size_t edit_distance(std::string_view a, std::string_view b) {
  // Optimal string alignment: a swap of two neighbours ("sythn") is one slip of the
  // fingers, so it counts as one edit, not two substitutions.
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1, 0));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  // Dashes are the same in every option name: they make no word nearer.
  const std::string_view letters = std::string_view(word).substr(std::min(word.find_first_not_of('-'), word.size()));
  const size_t limit = std::max<size_t>(1, (letters.size() + 1) / 3);
  std::string best;
  // Nearest first; between equals, one that starts with the same letter ("--cout" meant
  // --count more likely than --out).
  std::pair<size_t, bool> best_key{limit + 1, true};
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    const std::string_view c_letters = std::string_view(c).substr(std::min(c.find_first_not_of('-'), c.size()));
    const bool other_start = letters.empty() || c_letters.empty() || letters[0] != c_letters[0];
    const std::pair<size_t, bool> key{d, other_start};
    if (d > 0 && d <= limit && key < best_key) {
      best = c;
      best_key = key;
    }
  }
  return best;
}

namespace {

// The commands of `app` (option groups are subcommands without a name to CLI11).
std::vector<std::string> command_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App* s) { return !s->get_name().empty(); }))
    names.push_back(sub->get_name());
  return names;
}

// Every option spelling of `app`, its option groups and its subcommands.
void option_names(const CLI::App& app, std::vector<std::string>& names) {
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->get_group().empty()) continue;  // hidden: an old spelling is never suggested
    for (const auto& s : opt->get_snames()) names.push_back("-" + s);
    for (const auto& l : opt->get_lnames()) names.push_back("--" + l);
  }
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) option_names(*sub, names);
}

}  // namespace

std::string parse_error_message(const CLI::App& app, const CLI::ParseError& e) {
  const std::vector<std::string> commands = command_names(app);
  // The arguments no part of the app took, its subcommands' included.
  const std::vector<std::string> rest = app.remaining(true);
  // A program of commands where none was recognised: the first word left over was meant as one.
  if (!commands.empty() && app.get_subcommands().empty()) {
    std::string list;
    for (const auto& c : commands) list += (list.empty() ? "" : ", ") + c;
    for (const auto& word : rest) {
      if (word.empty() || word[0] == '-') continue;
      const std::string near = did_you_mean(word, commands);
      return "unknown command '" + word + "'" + (near.empty() ? "" : " (did you mean '" + near + "'?)") +
             "; commands: " + list;
    }
    if (dynamic_cast<const CLI::RequiredError*>(&e) && rest.empty()) return "a command is required; commands: " + list;
  }
  // An option nothing knows, whatever the error: a misspelt required option makes CLI11
  // report the required one missing, while the cause is the slip.
  {
    std::vector<std::string> known;
    option_names(app, known);
    for (const auto& arg : rest) {
      // Not a value ("-1") and not the end of options ("--").
      if (arg.size() < 2 || arg[0] != '-' || arg == "--" || !(std::isalpha(static_cast<unsigned char>(arg[1])) || arg[1] == '-'))
        continue;
      const std::string name = arg.substr(0, arg.find('='));
      const std::string near = did_you_mean(name, known);
      return "unknown option " + name + (near.empty() ? "" : " (did you mean " + near + "?)");
    }
  }
  return e.what();
}

std::string HelpFormatter::make_option_name(const CLI::Option* opt, bool is_positional) const {
  if (is_positional) return opt->get_name(true, false);
  // CLI11 shows a flag's value beside its name ("--no-flip{false}"): the names alone read better.
  std::string names;
  for (const auto& s : opt->get_snames()) names += (names.empty() ? "-" : ", -") + s;
  for (const auto& l : opt->get_lnames()) names += (names.empty() ? "--" : ", --") + l;
  return names;
}

namespace {

// "INT:at least 1" -> {"INT", "at least 1"}: CLI11 joins the type and the checks' descriptions.
std::pair<std::string, std::string> split_type(const CLI::Option* opt) {
  const std::string full = opt->get_type_name();
  const size_t colon = full.find(':');
  if (colon == std::string::npos) return {full, {}};
  return {full.substr(0, colon), full.substr(colon + 1)};
}

// CLI11's names for its own checks, in words ("FILE" -> "an existing file", "{a,b}" -> "one
// of a, b"); ours are words already.
std::string check_words(const std::string& check) {
  if (check == "FILE") return "an existing file";
  if (check == "DIR") return "an existing directory";
  if (check == "PATH(existing)") return "an existing path";
  if (check.size() > 2 && check.front() == '{' && check.back() == '}') {
    std::string list = check.substr(1, check.size() - 2);
    for (size_t at = list.find(','); at != std::string::npos; at = list.find(',', at + 2)) list.replace(at, 1, ", ");
    return "one of " + list;
  }
  return check;
}

}  // namespace

std::string HelpFormatter::make_option_opts(const CLI::Option* opt) const {
  if (!opt->get_option_text().empty()) return " " + opt->get_option_text();
  if (opt->get_type_size() == 0) return {};
  std::string out;
  const std::string type = split_type(opt).first;
  if (!type.empty()) out += " " + type;
  if (opt->get_expected_max() == CLI::detail::expected_max_vector_size) out += " ...";
  return out;
}

std::string HelpFormatter::make_option_desc(const CLI::Option* opt) const {
  std::string out = opt->get_description();
  const auto add = [&](const std::string& note) { out += (out.empty() ? "(" : " (") + note + ")"; };
  if (opt->get_type_size() != 0) {
    const std::string checks = split_type(opt).second;
    if (!checks.empty()) add(check_words(checks));
    std::string def = opt->get_default_str();
    // A list of one shows as its value: "[train.ids]" -> "train.ids".
    if (def.size() > 2 && def.front() == '[' && def.back() == ']' && def.find(',') == std::string::npos)
      def = def.substr(1, def.size() - 2);
    if (!def.empty()) add("default: " + def);
  }
  if (opt->get_required()) add("required");
  if (!opt->get_envname().empty()) add("env: " + opt->get_envname());
  for (const CLI::Option* other : opt->get_needs()) add("needs " + other->get_name());
  for (const CLI::Option* other : opt->get_excludes()) add("not with " + other->get_name());
  return out;
}

}  // namespace eve::cli
