// eve-rank: exact top-k search over embeddings; merging shard ranks; duplicates, leakage.
#include <CLI/CLI.hpp>

#include "eve/core/cli.h"
#include "eve/model/runtime.h"
#include "eve/search/dupes.h"
#include "eve/search/rank.h"
#include "eve/search/rank_merge.h"

namespace {

void add_dupes_options(CLI::App* s, eve::search::DupesOptions& o, const char* out_help) {
  s->add_option("ranks", o.ranks, "Ranks files (eve-rank output, best made with --min-score)")
      ->required()->check(CLI::ExistingFile);
  s->add_option("--min-score", o.min_score, "Ignore hits scoring below S (default: every hit in the files)")
      ->option_text("S");
  s->add_option("-o,--out", o.out, out_help)->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Exact top-k search by inner product over embedding matrices", "eve-rank"};
  eve::cli::CommonOptions common;
  eve::cli::add_common(app, common, eve::cli::kTorch, eve::model::build_info());
  eve::search::RankOptions o;
  // Not ->required(): the subcommands do without them (run_rank checks them).
  app.add_option("--queries", o.queries, "Query embeddings (.npy parts, in order; required to rank)")
      ->check(CLI::ExistingFile);
  app.add_option("--gallery", o.gallery,
                 "Gallery embeddings (.npy parts, in order; required to rank; may be the same modality as "
                 "the queries)")
      ->check(CLI::ExistingFile);
  app.add_option("--query-ids", o.query_ids,
                 "Query ids (.ids.jsonl parts; default: beside each .npy, else row numbers)")
      ->check(CLI::ExistingFile);
  app.add_option("--gallery-ids", o.gallery_ids,
                 "Gallery ids (.ids.jsonl parts; default: beside each .npy, else row numbers)")
      ->check(CLI::ExistingFile);
  auto* k = app.add_option("-k", o.k, "Results per query")->capture_default_str()->check(eve::cli::at_least(1));
  eve::cli::add_deprecated_alias(&app, "--k", k);
  app.add_option("-o,--out", o.out, "Ranks JSONL ('-' = stdout)")->capture_default_str();
  app.add_option("--scores-out", o.scores_out, "Also write the full score matrix (.npy float32)");
  app.add_flag("--exclude-self", o.exclude_self,
               "Never return a gallery row whose id is the query's id (a collection against itself)");
  app.add_option("--min-score", o.min_score,
                 "Write only hits scoring at least S, at most -k per query (near-duplicate search)")
      ->option_text("S");
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

  eve::search::RankMergeOptions merge;
  auto* mrg = app.add_subcommand(
      "merge", "Merge ranks made against disjoint gallery shards (same queries) into the global top-k");
  mrg->add_option("parts", merge.parts, "Ranks files, one per shard, in gallery order")
      ->required()->check(CLI::ExistingFile);
  auto* merge_k =
      mrg->add_option("-k", merge.k, "Results per query")->capture_default_str()->check(eve::cli::at_least(1));
  eve::cli::add_deprecated_alias(mrg, "--k", merge_k);
  mrg->add_option("-o,--out", merge.out, "Merged ranks JSONL ('-' = stdout)")->capture_default_str();

  eve::search::DupesOptions dupes, leakage;
  auto* dup = app.add_subcommand(
      "dupes", "Duplicate groups (connected components of the hits) of a collection ranked against itself");
  add_dupes_options(dup, dupes, "Groups JSONL ('-' = stdout)");
  auto* leak = app.add_subcommand(
      "leakage", "Leakage report: the queries (e.g. test) with near-duplicates in the gallery (e.g. train)");
  add_dupes_options(leak, leakage, "Report JSON ('-' = stdout)");
  app.require_subcommand(0, 1);

  return eve::cli::run(app, argc, argv, common, [&]() -> int {
    if (mrg->parsed()) return eve::search::merge_ranks(merge), 0;
    if (dup->parsed()) return eve::search::duplicate_groups(dupes), 0;
    if (leak->parsed()) return eve::search::leakage_report(leakage), 0;
    return eve::search::run_rank(o, common);
  });
}
