// eve-rank: exact top-k over embedding matrices (.npy parts), written as JSONL ranks.
// Torch-free header (the program's main includes it).
#pragma once

#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "eve/core/cli.h"

namespace eve::search {

struct RankOptions {
  std::vector<std::string> queries;      // .npy parts, concatenated by rows
  std::vector<std::string> gallery;      // .npy parts, concatenated by rows
  std::vector<std::string> query_ids;    // .ids.jsonl parts (default: beside each .npy)
  std::vector<std::string> gallery_ids;  // .ids.jsonl parts (default: beside each .npy)
  int k = 10;
  // Queries and gallery may hold the same modality (image to image, text to text): nothing
  // here depends on which side is which, except --rerank (an image against a text).
  // With exclude_self, a gallery row whose id equals the query's id is never a hit; the
  // query still gets k hits when the gallery has them.
  bool exclude_self = false;
  // When set (not NaN), only hits scoring at least this are written, still at most k per
  // query (a query may get none): near-duplicate detection.
  float min_score = std::numeric_limits<float>::quiet_NaN();
  std::string out = "-";         // ranks JSONL
  std::string scores_out;        // optional full score matrix (.npy, float32)
  int64_t max_scores = int64_t{1} << 28;  // refuse --scores-out above this many cells
  // Parts whose eve-embed meta files (see embed.h) name different bundles (model_sha256),
  // compat modes or image resolutions are refused unless this is set (then a warning).
  // Parts without a meta file are taken as they are, with a note. A ranks file gets
  // "<out without .jsonl>.meta.json": the inputs and their bundles, k, the re-rank settings
  // and what the scores are (inner product or ITM logit).
  bool allow_mixed = false;

  // Re-ranking as EVE's retrieval evaluation does it (docs/architecture.md, "Fine-tuning
  // and retrieval evaluation"): each
  // query's best k_test rows by inner product are scored again by the ITM "match" logit
  // (index 1) of the fusion (vl) pass over the (image, text) pair, best first (ties keep
  // the inner-product order), and the best k are written with that logit as their score;
  // --scores-out then holds the logits of those k_test pairs and -100 elsewhere. Query and
  // gallery ids are looked up among the ids eve-embed gives `images` and `texts` (see
  // embed.h): queries may be images (gallery texts) or texts (gallery images).
  bool rerank = false;
  std::string model;                // bundle with the itc and itm heads
  std::vector<std::string> images;  // image sources, as for eve-embed --images
  std::string texts;                // token-id records, as for eve-embed --texts
  std::string id_field;             // texts: row id field, as for eve-embed --id-field
  int k_test = 128;
  int batch_size = 0;               // pairs per fusion pass; 0 = a query's k_test candidates
                                    // in one pass for compat official models (as the
                                    // released evaluation; its outputs depend on the
                                    // batch), 64 otherwise
};

// Loads the parts, ranks, writes `out` (atomically when it is a file) and returns 0.
int run_rank(const RankOptions& opts, const cli::CommonOptions& common);

// The ids of one .npy part: "<stem>.ids.jsonl" beside "<stem>.npy".
std::string default_ids_path(const std::string& npy_path);

}  // namespace eve::search
