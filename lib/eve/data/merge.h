// Merging dataset dirs: the parts that `eve-prep ... --shard I/N` wrote on several machines
// (or any dataset dirs of one task and image policy) become one dataset dir.
//
// Everything is checked before anything is written: each part has manifest.json and an
// images.idx that verifies against its shards, all parts share "task" and "image_policy",
// all hold the same record files (*.jsonl; a part of a sharded run may lack the files of a
// split its manifest has no records of), parts prepared from the same inputs (equal
// manifest "sources") form one sharded run whose --shard counts agree and whose indices do
// not repeat, and an image key found in several parts has the same bytes in each.
//
// The merged dir: the parts' tar shards, hard-linked (copied across filesystems) and
// renumbered consecutively in part order; images.idx listing every key once (the first
// part's entry; offsets and sizes unchanged, since the shards are the parts' own bytes);
// each record file the concatenation of the parts' files in part order, byte for byte;
// manifest.json with the parts' counts combined. It is built in "<out>.tmp-<pid>" and
// renamed to <out> at the end, so <out> is complete or absent.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace eve::data {

struct MergeOptions {
  std::string out;                 // the merged dataset dir (must not exist yet)
  std::vector<std::string> parts;  // dataset dirs, in the order their records are wanted
  bool hard_links = true;          // false: always copy the shards
};

struct MergeReport {
  // True when <out> already held a complete merge of these same parts (unchanged since):
  // nothing was written and the counts below are those of that merge.
  bool up_to_date = false;
  uint64_t images = 0;             // keys in the merged index
  uint64_t duplicate_images = 0;   // keys also present in an earlier part (kept once)
  uint64_t shards = 0, shards_linked = 0, shards_copied = 0;
  uint64_t records = 0;            // records of the manifest's splits
  std::map<std::string, uint64_t> lines_by_file;  // lines of every merged *.jsonl
  // Parts of a sharded run that were not given (e.g. 1/4 and 3/4 of a 4-part run); the
  // merge goes ahead, the caller shows these.
  std::vector<std::string> warnings;
};

// Merges; throws eve::UsageError for argument problems (no part, --out among the parts, a
// part listed twice) and eve::Error naming the part, file and key for everything else.
MergeReport merge_datasets(const MergeOptions& options);

}  // namespace eve::data
