// eve-tokenize: Train, encode and decode with a sentencepiece tokenizer
#include <CLI/CLI.hpp>

#include "eve/core/cli.h"
#include "eve/core/unimplemented.h"

int main(int argc, char** argv) {
  CLI::App app{"Train, encode and decode with a sentencepiece tokenizer", "eve-tokenize"};
  eve::cli::CommonOptions common;
  eve::cli::add_common(app, common, eve::cli::kTorchFree);
  std::string command;
  app.add_subcommand("train", "Train a sentencepiece model")->callback([&] { command = "train"; });
  app.add_subcommand("encode", "Add token ids to JSONL records or text lines")->callback([&] { command = "encode"; });
  app.add_subcommand("decode", "Token ids back to text")->callback([&] { command = "decode"; });
  app.require_subcommand(1);
  return eve::cli::run(app, argc, argv, common, [&]() -> int {
    eve::not_implemented_yet("eve-tokenize " + command);
  });
}
