// eve-rank dupes and eve-rank leakage: near-duplicates from ranks files, typically made
// with --min-score (and --exclude-self for a collection against itself). Torch-free (the
// program's main includes it).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace eve::search {

struct DupesOptions {
  std::vector<std::string> ranks;  // ranks files, read in order
  // Hits scoring below this are ignored; NaN (the default): every hit in the files counts.
  float min_score = std::numeric_limits<float>::quiet_NaN();
  std::string out = "-";
};

struct DupesSummary {
  int64_t groups = 0;  // groups written (2 ids or more)
  int64_t ids = 0;     // ids in them
  int64_t pairs = 0;   // distinct pairs linking them
};

// Duplicate groups: every (query, hit) pair at or above the threshold links two ids (a
// hit whose id is the query's own is not a link), and a group is a connected component of
// those links. Writes one JSONL line per group of two ids or more:
//   {"group": G, "size": N, "ids": [ID, ...], "pairs": [[ID, ID, SCORE], ...]}
// groups in the order their first id was first seen, ids in that order too, each
// unordered pair once with the score it was first seen with (as written in the ranks).
DupesSummary duplicate_groups(const DupesOptions& opts);

struct LeakageSummary {
  int64_t queries = 0;      // query lines read
  int64_t leaked = 0;       // queries with a hit at or above the threshold
  int64_t gallery_ids = 0;  // distinct gallery ids among those hits
  int64_t pairs = 0;        // such (query, hit) pairs
};

// The leakage of one collection (the queries, e.g. a test split) into another (the
// gallery, e.g. the training split): one JSON object with the counts of LeakageSummary,
// the fraction of queries leaked, and under "leaks" each leaked query with its hits at or
// above the threshold, as [ID, SCORE] pairs best first.
LeakageSummary leakage_report(const DupesOptions& opts);

}  // namespace eve::search
