// eve-rank merge: the global top-k from ranks files made against disjoint gallery shards
// (the same queries, in the same order). Torch-free (the program's main includes it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace eve::search {

struct RankMergeOptions {
  // Ranks files, one per gallery shard, in gallery order: shard i's rows all come before
  // shard i + 1's in the whole gallery.
  std::vector<std::string> parts;
  int k = 10;
  std::string out = "-";
};

// Streams the parts line by line and writes, for every query, the best k of the union of
// its results: higher score first, and among equal scores the earlier part, then the
// earlier position within the part. Since each part lists equal scores by lower row, that
// is the lower row of the whole gallery: the ranks eve-rank writes for the whole gallery at
// once, byte for byte (ids and scores are copied as written). Memory holds one line per
// part. The parts' meta files (rank_meta_path) must agree on the queries, the embedding
// bundle of the queries and what the scores are, and each must have kept at least k hits
// (or its whole shard); re-ranked parts are refused. A file `out` gets a meta file of its
// own. Returns the number of queries.
int64_t merge_ranks(const RankMergeOptions& opts);

}  // namespace eve::search
