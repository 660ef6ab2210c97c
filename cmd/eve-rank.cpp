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
  app.add_option("-k,--k", o.k, "Results per query")->capture_default_str()->check(eve::cli::at_least(1));
  app.add_option("-o,--out", o.out, "Ranks JSONL ('-' = stdout)")->capture_default_str();
  app.add_option("--scores-out", o.scores_out, "Also write the full score matrix (.npy float32)");
  app.add_flag("--allow-mixed", o.allow_mixed,
               "Rank parts whose meta files name different bundles, compat modes or resolutions "
               "(refused without it)");
  auto* rr = app.add_option_group("Re-ranking", "Re-score each query's top --k-test by the ITM head");
  rr->add_flag("--rerank", o.rerank,
               "Re-rank the top --k-test of each query by the match logit of the fusion pass");
  rr->add_option("-m,--model", o.model, "Model bundle with the itc and itm heads")->option_text("BUNDLE");
  rr->add_option("--images", o.images, "The images embedded (as for eve-embed --images)")
      ->option_text("SRC ...");
  rr->add_option("--texts", o.texts, "The token-id records embedded (as for eve-embed --texts)")
      ->option_text("RECORDS");
  rr->add_option("--id-field", o.id_field, "Texts: record field holding the row id (as for eve-embed)");
  rr->add_option("--k-test", o.k_test, "Candidates re-ranked per query")->capture_default_str()
      ->check(eve::cli::at_least(1));
  rr->add_option("-b,--batch-size", o.batch_size,
                 "Pairs per fusion pass (default 64; for a compat official model, each query's "
                 "--k-test candidates in one pass, as the released evaluation)")
      ->check(eve::cli::at_least(1));
  return eve::cli::run(app, argc, argv, common, [&] { return eve::search::run_rank(o, common); });
}
