// eve-rank: exact top-k search over embeddings.
#include <CLI/CLI.hpp>

#include "eve/core/cli.h"
#include "eve/model/runtime.h"
#include "eve/search/rank.h"

int main(int argc, char** argv) {
  CLI::App app{"Exact top-k search by inner product over embedding matrices", "eve-rank"};
  eve::cli::CommonOptions common;
  eve::cli::add_common(app, common, eve::cli::kTorch, eve::nn::build_info());
  eve::search::RankOptions o;
  app.add_option("--queries", o.queries, "Query embeddings (.npy parts, in order)")
      ->required()->check(CLI::ExistingFile);
  app.add_option("--gallery", o.gallery, "Gallery embeddings (.npy parts, in order)")
      ->required()->check(CLI::ExistingFile);
  app.add_option("--query-ids", o.query_ids,
                 "Query ids (.ids.jsonl parts; default: beside each .npy, else row numbers)")
      ->check(CLI::ExistingFile);
  app.add_option("--gallery-ids", o.gallery_ids,
                 "Gallery ids (.ids.jsonl parts; default: beside each .npy, else row numbers)")
      ->check(CLI::ExistingFile);
  app.add_option("-k,--k", o.k, "Results per query")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("-o,--out", o.out, "Ranks JSONL ('-' = stdout)")->capture_default_str();
  app.add_option("--scores-out", o.scores_out, "Also write the full score matrix (.npy float32)");
  return eve::cli::run(app, argc, argv, common, [&] { return eve::search::run_rank(o, common); });
}
