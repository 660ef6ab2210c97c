#include "eve/search/dupes.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"
#include "eve/io/rank_file.h"

namespace eve::search {
namespace {

void check_options(const DupesOptions& o) {
  if (o.ranks.empty()) throw UsageError("no ranks file given");
  io::prepare_output(o.out);  // before the work
}

// Calls on_line for every line of every ranks file with the hits at or above the threshold
// (the hits are best first, so those are a prefix).
template <typename F>
void for_each_line(const DupesOptions& o, F&& on_line) {
  const bool by_score = !std::isnan(o.min_score);
  io::RankLine line;
  for (const auto& path : o.ranks) {
    io::RankReader r(path);
    while (r.next(line)) {
      size_t n = 0;
      while (n < line.hits.size() && (!by_score || line.hits[n].score >= o.min_score)) ++n;
      line.hits.resize(n);
      on_line(line);
    }
  }
}

// Union-find over ids numbered in the order they are first seen.
class Components {
 public:
  int node(const std::string& id) {
    auto [it, added] = index_.try_emplace(id, static_cast<int>(names_.size()));
    if (added) {
      names_.push_back(id);
      parent_.push_back(it->second);
    }
    return it->second;
  }
  int root(int x) {
    while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
    return x;
  }
  // The lower-numbered root stays, so a group's root is its first-seen id.
  void join(int a, int b) {
    a = root(a);
    b = root(b);
    if (a != b) parent_[std::max(a, b)] = std::min(a, b);
  }
  const std::string& name(int x) const { return names_[x]; }
  int size() const { return static_cast<int>(names_.size()); }

 private:
  std::unordered_map<std::string, int> index_;
  std::vector<std::string> names_;
  std::vector<int> parent_;
};

}  // namespace

DupesSummary duplicate_groups(const DupesOptions& o) {
  check_options(o);
  Components ids;
  struct Link {
    int a, b;
    std::string score;
  };
  std::vector<Link> links;
  std::unordered_set<uint64_t> seen;
  for_each_line(o, [&](const io::RankLine& line) {
    int q = -1;
    for (const auto& h : line.hits) {
      if (h.id == line.query) continue;
      if (q < 0) q = ids.node(line.query);
      const int g = ids.node(h.id);
      const uint64_t key = (uint64_t(std::min(q, g)) << 32) | uint64_t(std::max(q, g));
      if (!seen.insert(key).second) continue;
      links.push_back({q, g, h.score_text});
      ids.join(q, g);
    }
  });
  // Members and links by group, both in first-seen order.
  std::vector<std::vector<int>> members(ids.size());
  for (int x = 0; x < ids.size(); ++x) members[ids.root(x)].push_back(x);
  std::vector<std::vector<const Link*>> group_links(ids.size());
  for (const auto& l : links) group_links[ids.root(l.a)].push_back(&l);
  io::AtomicWriter out(o.out);
  DupesSummary s;
  std::string buf;
  for (int r = 0; r < ids.size(); ++r) {
    if (members[r].size() < 2) continue;
    buf = fmt::format("{{\"group\": {}, \"size\": {}, \"ids\": [", s.groups, members[r].size());
    for (size_t i = 0; i < members[r].size(); ++i) buf += (i ? ", " : "") + ids.name(members[r][i]);
    buf += "], \"pairs\": [";
    for (size_t i = 0; i < group_links[r].size(); ++i) {
      const Link& l = *group_links[r][i];
      buf += fmt::format("{}[{}, {}, {}]", i ? ", " : "", ids.name(l.a), ids.name(l.b), l.score);
    }
    buf += "]}\n";
    out.write(buf);
    ++s.groups;
    s.ids += static_cast<int64_t>(members[r].size());
    s.pairs += static_cast<int64_t>(group_links[r].size());
  }
  out.commit();
  log::info("dupes: {} groups of {} ids linked by {} pairs", s.groups, s.ids, s.pairs);
  return s;
}

LeakageSummary leakage_report(const DupesOptions& o) {
  check_options(o);
  LeakageSummary s;
  std::unordered_set<std::string> gallery;
  std::string leaks;
  for_each_line(o, [&](const io::RankLine& line) {
    ++s.queries;
    if (line.hits.empty()) return;
    leaks += s.leaked ? ",\n" : "\n";
    ++s.leaked;
    s.pairs += static_cast<int64_t>(line.hits.size());
    for (const auto& h : line.hits) gallery.insert(h.id);
    leaks += "{\"query\": " + line.query + ", \"matches\": [";
    for (size_t j = 0; j < line.hits.size(); ++j) io::add_rank_hit(leaks, j, line.hits[j].id, line.hits[j].score_text);
    leaks += "]}";
  });
  s.gallery_ids = static_cast<int64_t>(gallery.size());
  // Without --min-score, the threshold is what the ranks were made with: every file's meta
  // names one (eve-rank --min-score), and the smallest is the bound all the hits share.
  float made_with = o.min_score;
  if (std::isnan(made_with)) {
    for (const auto& path : o.ranks) {
      const auto meta = io::read_rank_meta(path);
      const auto it = meta.is_object() ? meta.find("min_score") : meta.end();
      if (!meta.is_object() || it == meta.end() || !it->is_number()) {
        made_with = std::numeric_limits<float>::quiet_NaN();
        break;
      }
      const float t = it->get<float>();
      made_with = std::isnan(made_with) ? t : std::min(made_with, t);
    }
  }
  const std::string threshold = std::isnan(made_with) ? "null" : fmt::format("{}", made_with);
  const double fraction = s.queries ? static_cast<double>(s.leaked) / static_cast<double>(s.queries) : 0.0;
  io::AtomicWriter out(o.out);
  out.write(fmt::format("{{\"ranks\": {}, \"min_score\": {}, \"queries\": {}, \"leaked_queries\": {}, "
                        "\"leaked_fraction\": {}, \"gallery_ids\": {}, \"pairs\": {}, \"leaks\": [{}{}]}}\n",
                        io::ordered_json(o.ranks).dump(), threshold, s.queries, s.leaked, fraction,
                        s.gallery_ids, s.pairs, leaks, s.leaked ? "\n" : ""));
  out.commit();
  log::info("leakage: {} of {} queries have a hit at or above {} ({} pairs, {} gallery ids)", s.leaked, s.queries,
            threshold == "null" ? "any score" : threshold, s.pairs, s.gallery_ids);
  return s;
}

}  // namespace eve::search
