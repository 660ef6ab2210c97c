#include "eve/search/rank_merge.h"

#include <algorithm>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/version.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"
#include "eve/io/rank_file.h"

namespace eve::search {
namespace {

// Each part's meta file, or null where a part has none.
std::vector<io::ordered_json> read_part_metas(const std::vector<std::string>& parts) {
  std::vector<io::ordered_json> metas;
  for (const auto& p : parts) metas.push_back(io::read_rank_meta(p));
  return metas;
}

// The parts must describe one ranking of the same queries against pieces of one gallery.
void check_parts(const RankMergeOptions& o, const std::vector<io::ordered_json>& metas) {
  const io::ordered_json none;
  const io::ordered_json* first = nullptr;
  std::string first_path;
  int missing = 0;
  for (size_t i = 0; i < metas.size(); ++i) {
    const auto& m = metas[i];
    const std::string path = io::rank_meta_path(o.parts[i]);
    if (m.is_null()) {
      ++missing;
      continue;
    }
    if (!m.value("rerank", none).is_null())
      throw Error("the part was re-ranked by the ITM head: the candidates re-ranked depend on the whole gallery",
                  path, {}, "merge the inner-product ranks of the shards, then re-rank the merged candidates");
    const int64_t k = m.value("k", int64_t{0}), rows = m.value("gallery_rows", int64_t{-1});
    if (k < o.k && k < rows)
      throw Error("the part kept " + std::to_string(k) + " hits per query of its " + std::to_string(rows) +
                      " gallery rows, fewer than -k " + std::to_string(o.k),
                  path, {}, "rank every shard with at least the -k of the merge");
    if (!first) {
      first = &m;
      first_path = path;
      continue;
    }
    for (const char* key : {"queries", "query_rows", "score", "exclude_self", "min_score"}) {
      if (m.value(key, none) != first->value(key, none))
        throw Error(first_path + " and " + path + " differ in \"" + key + "\": " + first->value(key, none).dump() +
                        " vs " + m.value(key, none).dump(),
                    {}, {}, "merge ranks of the same queries made the same way");
    }
    const auto qsha = [&](const io::ordered_json& x) {
      return x.contains("model_sha256") ? x["model_sha256"].value("queries", none) : none;
    };
    if (qsha(m) != qsha(*first))
      throw Error(first_path + " and " + path + " rank queries embedded by different bundles: " +
                      qsha(*first).dump() + " vs " + qsha(m).dump(),
                  {}, {}, "merge ranks of the same queries made the same way");
  }
  if (missing > 0)
    log::info("merge: {} of {} parts have no meta file; their queries and k are not checked", missing,
              o.parts.size());
}

void write_merged_meta(const RankMergeOptions& o, const std::vector<io::ordered_json>& metas, int64_t queries) {
  const io::ordered_json none;
  io::ordered_json m;
  const io::ordered_json* first = nullptr;
  for (const auto& x : metas)
    if (!x.is_null() && !first) first = &x;
  io::ordered_json gallery = io::ordered_json::array(), gallery_sha = io::ordered_json::array();
  int64_t gallery_rows = 0;
  bool rows_known = true;
  for (const auto& x : metas) {
    if (x.is_null()) {
      gallery.push_back(nullptr);
      gallery_sha.push_back(nullptr);
      rows_known = false;
      continue;
    }
    for (const auto& g : x.value("gallery", io::ordered_json::array())) gallery.push_back(g);
    const auto sha = x.contains("model_sha256") ? x["model_sha256"].value("gallery", none) : none;
    if (sha.is_array())
      for (const auto& s : sha) gallery_sha.push_back(s);
    else
      gallery_sha.push_back(nullptr);
    if (x.contains("gallery_rows") && x["gallery_rows"].is_number_integer())
      gallery_rows += x["gallery_rows"].get<int64_t>();
    else
      rows_known = false;
  }
  m["format"] = "eve-rank-meta 1";
  m["tool"] = version_line("eve-rank");
  m["ranks"] = o.out;
  m["queries"] = first ? first->value("queries", none) : none;
  m["gallery"] = gallery;
  m["query_rows"] = queries;
  m["gallery_rows"] = rows_known ? io::ordered_json(gallery_rows) : none;
  m["model_sha256"] = {{"queries", first && first->contains("model_sha256")
                                       ? (*first)["model_sha256"].value("queries", none) : none},
                       {"gallery", gallery_sha}};
  m["k"] = o.k;
  m["ties"] = "equal scores: lower gallery row first (part order, then row within the part)";
  m["score"] = first ? first->value("score", none) : none;
  m["rerank"] = nullptr;
  m["exclude_self"] = first ? first->value("exclude_self", false) : false;
  m["min_score"] = first ? first->value("min_score", none) : none;
  m["merged_from"] = o.parts;
  io::write_file_atomic(io::rank_meta_path(o.out), m.dump(2) + "\n");
}

}  // namespace

int64_t merge_ranks(const RankMergeOptions& o) {
  if (o.parts.empty()) throw UsageError("merge needs at least one ranks file");
  if (o.k < 1) throw UsageError("-k must be at least 1");
  io::prepare_output(o.out);  // before the work
  const auto metas = read_part_metas(o.parts);
  check_parts(o, metas);
  std::vector<std::unique_ptr<io::RankReader>> readers;
  for (const auto& p : o.parts) readers.push_back(std::make_unique<io::RankReader>(p));
  const size_t n = readers.size();
  std::vector<io::RankLine> lines(n);
  std::vector<size_t> at(n);
  io::AtomicWriter out(o.out);
  std::string buf;
  io::RankLine merged;
  int64_t queries = 0;
  for (;; ++queries) {
    std::vector<char> got(n);
    size_t ended = 0;
    for (size_t p = 0; p < n; ++p) ended += !(got[p] = readers[p]->next(lines[p]));
    if (ended == n) break;
    if (ended > 0) {
      const size_t short_part = std::find(got.begin(), got.end(), 0) - got.begin();
      const size_t long_part = std::find(got.begin(), got.end(), 1) - got.begin();
      throw Error("ends after " + std::to_string(queries) + " queries, but " + o.parts[long_part] + " has more",
                  o.parts[short_part], {}, "merge ranks of the same queries");
    }
    for (size_t p = 1; p < n; ++p)
      if (lines[p].query != lines[0].query)
        throw Error("query " + lines[p].query + " where " + o.parts[0] + " has query " + lines[0].query,
                    o.parts[p], readers[p]->where(), "merge ranks of the same queries, in the same order");
    // The best of the parts' heads each time: strictly higher score wins, so among equal
    // scores the earlier part (lower gallery rows) goes first, and a part's own order is kept.
    merged.query = lines[0].query;
    merged.hits.clear();
    std::fill(at.begin(), at.end(), 0);
    while (merged.hits.size() < static_cast<size_t>(o.k)) {
      size_t best = n;
      for (size_t p = 0; p < n; ++p)
        if (at[p] < lines[p].hits.size() &&
            (best == n || lines[p].hits[at[p]].score > lines[best].hits[at[best]].score))
          best = p;
      if (best == n) break;
      merged.hits.push_back(std::move(lines[best].hits[at[best]++]));
    }
    buf.clear();
    io::append_rank_line(buf, merged);
    out.write(buf);
  }
  out.commit();
  if (o.out != "-") write_merged_meta(o, metas, queries);
  log::info("merge: {} queries, the best {} of {} parts each", queries, o.k, n);
  return queries;
}

}  // namespace eve::search
