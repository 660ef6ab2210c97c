#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <csignal>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "eve/core/cli.h"
#include "eve/core/error.h"
#include "eve/core/progress.h"
#include "eve/core/sha256.h"
#include "eve/core/signals.h"
#include "eve/core/string_pool.h"
#include "eve/core/threads.h"
#include "eve/core/utf8.h"
#include "eve/core/version.h"

namespace {

TEST(Error, MessageNamesFileRecordAndHint) {
  eve::Error e("expected an object", "train.jsonl", "17", "each line must be a JSON object");
  EXPECT_STREQ(e.what(), "train.jsonl:17: expected an object (each line must be a JSON object)");
  EXPECT_EQ(e.exit_code(), eve::kExitRuntime);
  EXPECT_EQ(eve::Error("boom").what(), std::string("boom"));
  EXPECT_EQ(eve::Error("boom", {}, "key abc").what(), std::string("key abc: boom"));
}

TEST(Error, LibraryExceptionsBecomeOneLineWithThePathFirst) {
  std::filesystem::filesystem_error fe("cannot create directories", "/ro/run",
                                       std::make_error_code(std::errc::permission_denied));
  EXPECT_EQ(eve::describe_exception(fe), "/ro/run: cannot create directories: Permission denied");
  std::filesystem::filesystem_error two("cannot rename", "a", "b", std::make_error_code(std::errc::no_such_file_or_directory));
  EXPECT_EQ(eve::describe_exception(two), "a -> b: cannot rename: No such file or directory");
  try {
    nlohmann::json(std::string("caf\xe9")).dump();
    ADD_FAILURE() << "dump accepted invalid UTF-8";
  } catch (const nlohmann::json::exception& e) {
    const std::string line = eve::describe_exception(e);
    EXPECT_EQ(line.rfind("unexpected JSON: ", 0), 0u) << line;
    EXPECT_EQ(line.find("json.exception"), std::string::npos) << line;
    EXPECT_NE(line.find("0xE9"), std::string::npos) << line;
  }
  EXPECT_EQ(eve::describe_exception(std::runtime_error("plain")), "plain");
}

TEST(Error, KindsMapToExitCodes) {
  EXPECT_EQ(eve::UsageError("x").exit_code(), 2);
  EXPECT_EQ(eve::TooManyBadInputs("x").exit_code(), 3);
  eve::Interrupted i(SIGTERM);
  EXPECT_EQ(i.exit_code(), 128 + SIGTERM);
  EXPECT_NE(std::string(i.what()).find("signal 15"), std::string::npos);
}

TEST(Signals, StopFlagThrowsInterrupted) {
  eve::signals::reset();
  EXPECT_NO_THROW(eve::signals::throw_if_stopped());
  eve::signals::request_stop(SIGINT);
  EXPECT_TRUE(eve::signals::stop_requested());
  try {
    eve::signals::throw_if_stopped();
    FAIL() << "expected Interrupted";
  } catch (const eve::Interrupted& e) {
    EXPECT_EQ(e.exit_code(), 130);
  }
  eve::signals::reset();
}

TEST(Signals, RealSignalSetsFlag) {
  eve::signals::reset();
  eve::signals::install();
  std::raise(SIGTERM);
  EXPECT_EQ(eve::signals::stop_signal(), SIGTERM);
  eve::signals::reset();
}

// A second signal while a checkpoint is written is held: the write finishes and the stop
// stays a clean one.
TEST(Signals, SecondSignalDuringDeferredWorkIsHeld) {
  eve::signals::reset();
  eve::signals::install();
  {
    eve::signals::DeferHardStop defer;
    std::raise(SIGINT);
    std::raise(SIGINT);  // would end the test process outside the deferred section
    EXPECT_TRUE(eve::signals::hard_stop_held());
  }
  EXPECT_EQ(eve::signals::stop_signal(), SIGINT);
  eve::signals::reset();
  EXPECT_FALSE(eve::signals::hard_stop_held());
}

// Outside a deferred section (and for a third signal inside one) the process ends at once
// by the signal, after the note that names what is intact.
TEST(SignalsDeathTest, SecondSignalEndsProcessWithNote) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        eve::signals::reset();
        eve::signals::install();
        eve::signals::set_abandon_note("the checkpoint of step 4 is intact");
        std::raise(SIGINT);
        std::raise(SIGINT);
        std::exit(0);
      },
      testing::KilledBySignal(SIGINT), "the checkpoint of step 4 is intact");
  EXPECT_EXIT(
      {
        eve::signals::reset();
        eve::signals::install();
        eve::signals::set_abandon_note("abandoned; step 2 is intact");
        eve::signals::DeferHardStop defer;
        std::raise(SIGTERM);
        std::raise(SIGTERM);
        std::raise(SIGTERM);
        std::exit(0);
      },
      testing::KilledBySignal(SIGTERM), "finishing the checkpoint being written(.|\n)*abandoned; step 2 is intact");
}

TEST(Threads, ParallelForVisitsEveryIndexOnce) {
  eve::ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(1000);
  eve::parallel_for(pool, hits.size(), [&](size_t i) { hits[i]++; });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(Threads, ParallelForRethrowsAfterAllFinished) {
  eve::ThreadPool pool(2);
  std::atomic<int> done{0};
  EXPECT_THROW(eve::parallel_for(pool, 50,
                                 [&](size_t i) {
                                   done++;
                                   if (i == 7) throw eve::Error("bad item 7");
                                 }),
               eve::Error);
  EXPECT_EQ(done.load(), 50);
}

TEST(Threads, ResolveThreads) {
  EXPECT_EQ(eve::resolve_threads(5), 5);
  EXPECT_GE(eve::resolve_threads(0), 1);
}

// Every index lands in exactly one range, in order, whatever the pool; small loops and loops
// without a pool run as one range on the calling thread.
TEST(Threads, ForChunksCoversEachIndexOnceInContiguousRanges) {
  for (int threads : {0, 1, 3}) {
    for (size_t n : {size_t{0}, size_t{5}, size_t{1023}, size_t{1024}, size_t{5000}, size_t{100003}}) {
      std::unique_ptr<eve::ThreadPool> pool;
      if (threads > 0) pool = std::make_unique<eve::ThreadPool>(threads);
      std::vector<std::atomic<int>> hits(n);
      std::atomic<size_t> ranges{0};
      eve::for_chunks(pool.get(), n, [&](size_t begin, size_t end) {
        EXPECT_LT(begin, end);
        ++ranges;
        for (size_t i = begin; i < end; ++i) hits[i]++;
      });
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "index " << i << " of " << n;
      const bool split = threads > 1 && n >= 1024;
      if (split) {
        EXPECT_GT(ranges.load(), static_cast<size_t>(threads)) << n << " on " << threads;
      } else {
        EXPECT_EQ(ranges.load(), n == 0 ? 0u : 1u) << n << " on " << threads;
      }
    }
  }
  eve::ThreadPool pool(2);
  EXPECT_THROW(eve::for_chunks(&pool, 4096,
                               [](size_t begin, size_t) {
                                 if (begin > 0) throw eve::Error("a later range failed");
                               }),
               eve::Error);
}

TEST(StringPool, InternsEachDistinctStringOnceInOrderOfFirstSight) {
  eve::StringPool pool;
  EXPECT_EQ(pool.intern("yes"), 0u);
  EXPECT_EQ(pool.intern("no"), 1u);
  std::string again = "yes";
  EXPECT_EQ(pool.intern(again), 0u);
  EXPECT_EQ(pool.intern(""), 2u);
  EXPECT_EQ(pool.size(), 3u);
  // The pool owns its strings: the caller's buffer may change.
  again = "changed";
  EXPECT_EQ(pool[0], "yes");
  // Enough strings to grow the deque many times: ids and views stay valid.
  for (int i = 0; i < 5000; ++i) pool.intern("s" + std::to_string(i));
  EXPECT_EQ(pool.intern("s0"), 3u);
  EXPECT_EQ(pool[3 + 4999], "s4999");
  eve::StringPool moved = std::move(pool);
  EXPECT_EQ(moved.intern("no"), 1u);
  EXPECT_EQ(moved.size(), 5003u);
}

TEST(Utf8, EncodesOneToFourBytes) {
  std::string out;
  for (char32_t cp : {U'A', U'\u00E9', U'\u07FF', U'\u0800', U'\u20AC', U'\uFFFF', U'\U00010000',
                      U'\U0001F600', U'\U0010FFFF'})
    eve::append_utf8(out, cp);
  EXPECT_EQ(out,
            "A" "\xc3\xa9" "\xdf\xbf" "\xe0\xa0\x80" "\xe2\x82\xac" "\xef\xbf\xbf"
            "\xf0\x90\x80\x80" "\xf0\x9f\x98\x80" "\xf4\x8f\xbf\xbf");
  std::string nul;
  eve::append_utf8(nul, U'\0');
  EXPECT_EQ(nul, std::string(1, '\0'));
}

TEST(Progress, DurationFormatting) {
  EXPECT_EQ(eve::Progress::format_duration(3.21), "3.2s");
  EXPECT_EQ(eve::Progress::format_duration(245), "4m05s");
  EXPECT_EQ(eve::Progress::format_duration(7380), "2h03m");
}

TEST(Progress, PlainLinesCarryCountLossRateAndEta) {
  // Off a terminal (gtest's capture is a file) a line comes out whenever the interval has
  // passed: an interval of a nanosecond makes every update one.
  eve::Progress::set_plain_every(1e-9);
  testing::internal::CaptureStderr();
  {
    eve::Progress p("pretrain", 200, "steps");
    p.set(10);
    p.set_loss(2.5);
    p.set(40);
  }
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("pretrain: 10/200 steps (5%), "), std::string::npos) << err;
  EXPECT_EQ(err.find("10/200 steps (5%), loss"), std::string::npos) << err;
  EXPECT_NE(err.find("pretrain: 40/200 steps (20%), loss 2.5000, "), std::string::npos) << err;
  EXPECT_NE(err.find(" steps/s, ETA "), std::string::npos) << err;
  // 0: no periodic lines at all.
  eve::Progress::set_plain_every(0);
  testing::internal::CaptureStderr();
  {
    eve::Progress p("embed", 0, "img");
    p.set(5);
  }
  err = testing::internal::GetCapturedStderr();
  eve::Progress::set_plain_every(30);
  EXPECT_EQ(err, "");
}

TEST(Cli, EditDistanceCountsASwapAsOneEdit) {
  EXPECT_EQ(eve::cli::edit_distance("synth", "snyth"), 1u);
  EXPECT_EQ(eve::cli::edit_distance("synth", "sythn"), 2u);  // the n moved: out and in again
  EXPECT_EQ(eve::cli::edit_distance("--max-step", "--max-steps"), 1u);
  EXPECT_EQ(eve::cli::edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(eve::cli::edit_distance("", "abc"), 3u);
  EXPECT_EQ(eve::cli::edit_distance("same", "same"), 0u);
}

TEST(Cli, DidYouMeanOnlyForNearMisses) {
  const std::vector<std::string> opts{"--max-bad", "--max-steps", "--seed", "-k"};
  EXPECT_EQ(eve::cli::did_you_mean("--max-step", opts), "--max-steps");
  EXPECT_EQ(eve::cli::did_you_mean("--sede", opts), "--seed");
  EXPECT_EQ(eve::cli::did_you_mean("--frobnicate", opts), "");
  // About a third of the letters: two edits are too many for a four-letter word.
  EXPECT_EQ(eve::cli::did_you_mean("--sxxd", opts), "");
  EXPECT_EQ(eve::cli::did_you_mean("sythn", {"caption", "synth", "merge"}), "synth");
  // As near as --out, but starting the same.
  EXPECT_EQ(eve::cli::did_you_mean("--cout", {"--out", "--count"}), "--count");
}

// A program of commands as the mains build them: options in groups and subcommands.
struct TestApp {
  CLI::App app{"test", "eve-test"};
  eve::cli::CommonOptions common;
  int k = 10, steps = 0;
  bool flip = true;
  std::string data, format = "json";
  std::vector<std::string> train{"train.ids"};  // a list, as eve-finetune's --train
  TestApp() {
    eve::cli::add_common(app, common, eve::cli::kTorchFree);
    auto* synth = app.add_subcommand("synth", "Toy world");
    synth->add_option("-k,--k", k, "Results")->check(eve::cli::at_least(1))->capture_default_str();
    synth->add_option("--data", data, "Dataset dir")->required();
    synth->add_option("--train", train, "Split")->capture_default_str();
    synth->add_flag("!--no-flip", flip, "No flip");
    synth->add_option("--format", format, "Output")->check(CLI::IsMember({"json", "table"}));
    auto* group = synth->add_option_group("Schedule", "When to stop");
    group->add_option("--max-steps", steps, "Steps");
    app.add_subcommand("merge", "Join parts");
    app.require_subcommand(1);
  }
  std::string error(std::vector<std::string> args) {
    std::reverse(args.begin(), args.end());  // CLI11 takes them last first
    try {
      app.parse(args);
    } catch (const CLI::ParseError& e) {
      return eve::cli::parse_error_message(app, e);
    }
    return "parsed";
  }
};

TEST(Cli, ParseErrorsNameWhatWasMeant) {
  EXPECT_EQ(TestApp().error({"sythn"}), "unknown command 'sythn' (did you mean 'synth'?); commands: synth, merge");
  EXPECT_EQ(TestApp().error({"--seed", "3", "bake"}), "unknown command 'bake'; commands: synth, merge");
  EXPECT_EQ(TestApp().error({}), "a command is required; commands: synth, merge");
  EXPECT_EQ(TestApp().error({"synth", "--data", "d", "--max-step", "2"}),
            "unknown option --max-step (did you mean --max-steps?)");
  EXPECT_EQ(TestApp().error({"synth", "--data", "d", "--trian=x"}), "unknown option --trian (did you mean --train?)");
  // --data is missing because it was misspelt: the slip is what to report.
  EXPECT_EQ(TestApp().error({"synth", "--dta", "d"}), "unknown option --dta (did you mean --data?)");
  EXPECT_EQ(TestApp().error({"synth", "--data", "d", "-k", "0"}), "--k: must be at least 1, got 0");
  EXPECT_EQ(TestApp().error({"synth", "--data", "d", "-k", "many"}), "--k: must be a number, got 'many'");
  EXPECT_EQ(TestApp().error({"synth", "--data", "d", "--threads", "-1"}),
            "--threads: must be 0 (all cores) or more, got -1");
  EXPECT_EQ(TestApp().error({"synth", "--data", "d", "--progress-every", "0.5"}), "parsed");
}

TEST(Cli, BetweenNamesBothEnds) {
  double x = 0;
  CLI::App app{"test", "eve-test"};
  app.add_option("--max-bad", x)->check(eve::cli::between(0, 1));
  try {
    app.parse(std::vector<std::string>{"2", "--max-bad"});
    FAIL() << "2 passed";
  } catch (const CLI::ParseError& e) {
    EXPECT_EQ(eve::cli::parse_error_message(app, e), "--max-bad: must be between 0 and 1, got 2");
  }
}

TEST(Cli, HelpShowsDefaultsAndRequiredWithoutFlagValues) {
  TestApp t;
  const std::string help = t.app.get_subcommand("synth")->help();
  EXPECT_NE(help.find("(default: train.ids)"), std::string::npos) << help;
  EXPECT_NE(help.find("Dataset dir (required)"), std::string::npos) << help;
  EXPECT_NE(help.find("--no-flip"), std::string::npos) << help;
  EXPECT_EQ(help.find('{'), std::string::npos) << help;
  EXPECT_EQ(help.find("=train.ids"), std::string::npos) << help;
  EXPECT_EQ(help.find("[train.ids]"), std::string::npos) << help;
  EXPECT_NE(help.find("(at least 1) (default: 10)"), std::string::npos) << help;
  EXPECT_NE(help.find("Output (one of json, table)"), std::string::npos) << help;
  const std::string top = t.app.help();
  EXPECT_NE(top.find("(0 or more) (default: 30)"), std::string::npos) << top;
  EXPECT_NE(top.find("(env: EVE_THREADS)"), std::string::npos) << top;
}

TEST(Version, LineNamesProgramAndVersion) {
  std::string v = eve::version_line("eve-score");
  EXPECT_EQ(v.rfind(std::string("eve-score ") + eve::version(), 0), 0u) << v;
}

}  // namespace

// FIPS 180-4's examples, a message that ends exactly at a block's padding boundary, and a
// long one fed in uneven pieces (the million "a" of the NIST test vectors).
TEST(Sha256, KnownDigests) {
  EXPECT_EQ(eve::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(eve::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(eve::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  eve::Sha256 h;
  const std::string chunk(997, 'a');
  size_t fed = 0;
  while (fed < 1000000) {
    const size_t n = std::min(chunk.size(), 1000000 - fed);
    h.update(chunk.data(), n);
    fed += n;
  }
  EXPECT_EQ(h.hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, FileDigestEqualsTheDataDigestAndMissingFilesAreNamed) {
  const std::string path = ::testing::TempDir() + "/sha256_test.bin";
  std::string data;
  for (int i = 0; i < 3 << 19; ++i) data += static_cast<char>(i * 7 + i / 5);
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(data.data(), 1, data.size(), f);
    std::fclose(f);
  }
  EXPECT_EQ(eve::sha256_file(path), eve::sha256_hex(data));
  std::remove(path.c_str());
  try {
    eve::sha256_file(path);
    FAIL() << "no error for a missing file";
  } catch (const eve::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}
