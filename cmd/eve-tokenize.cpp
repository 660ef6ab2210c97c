// eve-tokenize: train, encode and decode with a sentencepiece tokenizer (a pipe stage).
#include <CLI/CLI.hpp>

#include <iostream>

#include "eve/core/cli.h"
#include "eve/core/log.h"
#include "eve/io/file.h"
#include "eve/text/sentencepiece_commands.h"

namespace {

using eve::text::CleanMode;

const std::vector<std::string> kCleanModes = {"caption", "question", "none"};

void add_bad_options(CLI::App* app, eve::text::BadRecordOptions& bad) {
  app->add_flag("--skip-bad", bad.skip_bad,
                "Skip records that cannot be processed, count them and report on stderr");
  app->add_option("--max-bad", bad.max_bad,
                  "With --skip-bad: fail (exit 3) when more than this fraction is skipped")
      ->check(eve::cli::between(0, 1))
      ->capture_default_str();
}

void add_clean_options(CLI::App* app, std::string& clean, int& max_words, const char* what) {
  app->add_option("--clean", clean, what)->check(CLI::IsMember(kCleanModes));
  app->add_option("--max-words", max_words,
                  "Keep at most this many words when cleaning (default: 30 for captions, "
                  "50 for questions; 0 = all)");
}

// --tokenizer: the sentencepiece model, or a bundle dir holding one. "-m/--model" was its
// spelling before the programs agreed that --model names a bundle everywhere.
void add_tokenizer_option(CLI::App* app, std::string& path) {
  auto* opt = app->add_option("--tokenizer", path, "The sentencepiece model (tok.model), or a bundle dir")->required();
  eve::cli::add_deprecated_alias(app, "-m,--model", opt);
}

// -o/--out, as in every eve program (old spelling --output).
void add_out_option(CLI::App* app, std::string& path) {
  auto* opt = app->add_option("-o,--out", path, "Output file (default: stdout)");
  eve::cli::add_deprecated_alias(app, "--output", opt);
}

std::optional<CleanMode> clean_mode(const std::string& name) {
  if (name.empty()) return std::nullopt;
  return eve::text::parse_clean_mode(name);
}

// Runs one line-processing command with its output going atomically to `path`.
int write_lines(const std::string& path,
                const std::function<eve::text::LineStats(const eve::text::Sink&)>& body) {
  eve::io::AtomicWriter out(path);
  eve::text::LineStats stats = body([&out](std::string_view s) { out.write(s); });
  out.commit();
  if (stats.skipped) eve::log::warn("{}", stats.summary());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train, encode and decode with a sentencepiece tokenizer", "eve-tokenize"};
  eve::cli::CommonOptions common;
  eve::cli::add_common(app, common, eve::cli::kTorchFree);
  std::string command, clean, output = "-";

  eve::text::TrainOptions train;
  auto* t = app.add_subcommand("train", "Train a sentencepiece model (ids: pad 0, unk 1, cls 2, "
                                        "sep 3, mask 4)");
  t->add_option("inputs", train.inputs,
                "Text files (one text per line), JSONL record files (*.jsonl) or dataset "
                "directories")
      ->required();
  auto* t_out = t->add_option("-o,--out", train.output,
                               "Model file to write; the ids go to a JSON file beside it (tok.model -> tok.json)")
                    ->required();
  eve::cli::add_deprecated_alias(t, "--output", t_out);
  t->add_option("--model-type", train.model_type, "Model type")
      ->check(CLI::IsMember({"bpe", "unigram"}))
      ->capture_default_str();
  t->add_option("--vocab-size", train.vocab_size, "Vocabulary size, special tokens included")
      ->capture_default_str();
  t->add_option("--character-coverage", train.character_coverage,
                "Fraction of characters the vocabulary must cover")
      ->check(eve::cli::between(0.9, 1))
      ->capture_default_str();
  t->add_option("--field", train.fields,
                "JSONL field to read (repeatable; default: text, texts, question, sentence)");
  add_clean_options(t, clean, train.max_words,
                    "Cleaning: caption, question or none (default: question for \"question\", "
                    "caption otherwise)");
  add_bad_options(t, train.bad);
  t->callback([&] { command = "train"; });

  eve::text::EncodeOptions enc;
  auto* e = app.add_subcommand("encode", "Add token ids to JSONL records or text lines");
  add_tokenizer_option(e, enc.model);
  e->add_option("inputs", enc.inputs, "JSONL files or text files with --plain (default: stdin)");
  add_out_option(e, output);
  e->add_option("--field", enc.fields,
                "Text field to encode (repeatable; default: text, texts, question, sentence)");
  add_clean_options(e, clean, enc.max_words,
                    "Cleaning: caption, question or none (default: question for \"question\", "
                    "caption otherwise)");
  e->add_option("--max-tokens", enc.max_tokens, "Keep at most this many ids, [CLS] and [SEP] included")
      ->check(eve::cli::at_least(3))
      ->capture_default_str();
  e->add_flag("--plain", enc.plain, "Text lines in, lines of space-separated ids out");
  add_bad_options(e, enc.bad);
  e->callback([&] { command = "encode"; });

  eve::text::DecodeOptions dec;
  auto* d = app.add_subcommand("decode", "Token ids back to text");
  add_tokenizer_option(d, dec.model);
  d->add_option("inputs", dec.inputs, "JSONL files or lines of ids with --plain (default: stdin)");
  add_out_option(d, output);
  d->add_option("--field", dec.fields, "Ids field to decode (repeatable; default: ids, ids_list)");
  d->add_flag("--plain", dec.plain, "Lines of space-separated ids in, text lines out");
  d->add_flag("--keep-special", dec.keep_special, "Write special tokens as [CLS], [MASK], ...");
  add_bad_options(d, dec.bad);
  d->callback([&] { command = "decode"; });

  std::string info_model;
  auto* i = app.add_subcommand("info", "Print the vocabulary size and special ids as JSON");
  add_tokenizer_option(i, info_model);
  i->callback([&] { command = "info"; });

  eve::text::CleanOptions cln;
  auto* c = app.add_subcommand("clean", "Clean text lines with EVE's caption or question rules");
  c->add_option("inputs", cln.inputs, "Text files (default: stdin)");
  add_out_option(c, output);
  add_clean_options(c, clean, cln.max_words, "Cleaning: caption, question or none (default: caption)");
  add_bad_options(c, cln.bad);
  c->callback([&] { command = "clean"; });

  app.require_subcommand(1);
  return eve::cli::run(app, argc, argv, common, [&]() -> int {
    if (command == "train") {
      train.clean = clean_mode(clean);
      train.threads = common.threads;
      train.quiet_library = !common.verbose;
      auto r = eve::text::run_train(train);
      if (r.lines.skipped) eve::log::warn("{}", r.lines.summary());
      eve::log::info("wrote {} ({} pieces) and {}", train.output, r.info.vocab_size, r.info_path);
      return 0;
    }
    if (command == "encode") {
      enc.clean = clean_mode(clean);
      enc.threads = common.threads;
      return write_lines(output, [&](const auto& sink) { return eve::text::run_encode(enc, sink); });
    }
    if (command == "decode") {
      dec.threads = common.threads;
      return write_lines(output, [&](const auto& sink) { return eve::text::run_decode(dec, sink); });
    }
    if (command == "clean") {
      cln.clean = clean_mode(clean).value_or(CleanMode::caption);
      cln.threads = common.threads;
      return write_lines(output, [&](const auto& sink) { return eve::text::clean_lines(cln, sink); });
    }
    std::cout << eve::text::to_json(eve::text::model_info(info_model)).dump() << "\n";
    return 0;
  });
}
