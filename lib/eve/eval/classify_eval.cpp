#include "eve/eval/classify_eval.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/eval/first_items.h"
#include "eve/io/jsonl.h"

namespace eve::eval {
namespace {

std::string shown(const std::string& path) { return path == "-" ? "<stdin>" : path; }

// A class or an id as text: a string's own characters, a number's digits; anything else has
// no text (false).
bool as_text(const io::json& v, std::string& out) {
  if (v.is_string()) {
    out = v.get<std::string>();
    return true;
  }
  if (v.is_number_integer() || v.is_number_unsigned()) {
    out = v.dump();
    return true;
  }
  return false;
}

}  // namespace

ClassifyGold parse_classify_gold(const std::string& path, const std::string& field, const std::string& id_field) {
  if (field.empty()) throw UsageError("--field is required: which attribute of the gold records to score");
  ClassifyGold gold;
  gold.path = shown(path);
  io::JsonlReader in(path);
  std::unordered_map<std::string, uint64_t> first_line;
  io::json rec;
  while (in.next(rec)) {
    const std::string line = std::to_string(in.line_number());
    auto fail = [&](const std::string& what, const std::string& hint = {}) {
      throw Error(what, gold.path, line, hint);
    };
    std::string id;
    if (!rec.contains(id_field)) fail("no \"" + id_field + "\" field naming the image", "pick the field with --id-field");
    if (!as_text(rec[id_field], id)) fail("\"" + id_field + "\" must be a string or an integer");
    if (!rec.contains(field)) fail("no \"" + field + "\" field", "pick the attribute with --field");
    const io::json& v = rec[field];
    std::vector<std::string> classes;
    std::string one;
    if (v.is_array()) {
      gold.multi_label = true;
      for (const auto& c : v) {
        if (!as_text(c, one)) fail("\"" + field + "\" must be a class (string or integer) or a list of them");
        classes.push_back(one);
      }
      if (classes.empty()) fail("\"" + field + "\" is an empty list: the image has no correct class");
    } else if (as_text(v, one)) {
      classes.push_back(one);
    } else {
      fail("\"" + field + "\" must be a class (string or integer) or a list of them");
    }
    auto [it, fresh] = first_line.emplace(id, in.line_number());
    if (!fresh) throw repeated_id_on_line(gold.path, in.line_number(), id_field, id, it->second);
    gold.classes.emplace(id, std::move(classes));
  }
  if (gold.classes.empty()) throw Error("no gold records", gold.path, {}, "give the labels as JSON Lines, one record per image");
  return gold;
}

std::vector<RankedImage> parse_class_ranks(const std::string& path, const ClassifyGold& gold) {
  const std::string name = shown(path);
  io::JsonlReader in(path);
  std::unordered_map<std::string, uint64_t> first_line;
  std::vector<RankedImage> out;
  io::json rec;
  while (in.next(rec)) {
    const std::string line = std::to_string(in.line_number());
    auto fail = [&](const std::string& what, const std::string& hint = {}) { throw Error(what, name, line, hint); };
    RankedImage r;
    if (!rec.contains("query") || !as_text(rec["query"], r.id))
      fail("no \"query\" naming the image (a string or an integer)", "give eve-rank's output, images as --queries");
    if (!rec.contains("results") || !rec["results"].is_array())
      fail("no \"results\" list", "give eve-rank's output, images as --queries");
    for (const auto& res : rec["results"]) {
      std::string c;
      if (!res.is_array() || res.empty() || !as_text(res[0], c)) fail("each result must be [class id, score]");
      r.classes.push_back(std::move(c));
    }
    if (!gold.classes.count(r.id))
      fail("image " + io::json(r.id).dump() + " has no record in " + gold.path,
           "the ranks' queries must be images of the labels file (with --id-field naming their ids)");
    auto [it, fresh] = first_line.emplace(r.id, in.line_number());
    if (!fresh) throw repeated_id_on_line(name, in.line_number(), "query", r.id, it->second);
    out.push_back(std::move(r));
  }
  if (out.empty()) throw Error("no ranked images", name, {}, "rank the images against the classes with eve-rank");
  return out;
}

ClassifyScores evaluate_classify(const ClassifyGold& gold, const std::vector<RankedImage>& ranks, int confused_pairs) {
  ClassifyScores s;
  s.images = static_cast<int64_t>(ranks.size());
  s.min_results = ranks.empty() ? 0 : SIZE_MAX;
  std::set<std::string> candidates;
  std::map<std::string, std::pair<int64_t, int64_t>> per_class;  // class -> images, top-1 hits
  std::map<std::pair<std::string, std::string>, int64_t> confusion;
  int64_t hit1 = 0, hit5 = 0;
  double chance = 0;
  for (const auto& r : ranks) {
    const std::vector<std::string>& want = gold.classes.at(r.id);
    auto correct = [&](const std::string& c) { return std::find(want.begin(), want.end(), c) != want.end(); };
    candidates.insert(r.classes.begin(), r.classes.end());
    s.min_results = std::min(s.min_results, r.classes.size());
    const bool first = !r.classes.empty() && correct(r.classes[0]);
    bool five = false;
    for (size_t k = 0; k < r.classes.size() && k < 5; ++k) five = five || correct(r.classes[k]);
    hit1 += first;
    hit5 += five;
    for (const auto& c : want) {
      auto& pc = per_class[c];
      ++pc.first;
      pc.second += first;
      if (!first && !r.classes.empty()) ++confusion[{c, r.classes[0]}];
    }
  }
  s.classes = static_cast<int64_t>(candidates.size());
  // Chance and reachability need the whole candidate set, known only after every image.
  for (const auto& r : ranks) {
    int64_t reachable = 0;
    for (const auto& c : gold.classes.at(r.id)) reachable += candidates.count(c) > 0;
    if (!candidates.empty()) chance += static_cast<double>(reachable) / static_cast<double>(candidates.size());
    if (reachable == 0) {
      ++s.unreachable;
      if (s.unreachable_ids.size() < 5) s.unreachable_ids.push_back(r.id);
    }
  }
  const double n = static_cast<double>(s.images);
  s.top1 = 100.0 * static_cast<double>(hit1) / n;
  s.top5 = 100.0 * static_cast<double>(hit5) / n;
  s.chance_top1 = 100.0 * chance / n;
  for (const auto& [c, v] : per_class) {
    s.per_class.push_back({c, v.first, 100.0 * static_cast<double>(v.second) / static_cast<double>(v.first)});
    if (v.first > 0 && (s.majority_class.empty() || 100.0 * static_cast<double>(v.first) / n > s.majority_top1)) {
      s.majority_class = c;
      s.majority_top1 = 100.0 * static_cast<double>(v.first) / n;
    }
  }
  for (const auto& [pair, count] : confusion) s.confused.push_back({pair.first, pair.second, count});
  std::stable_sort(s.confused.begin(), s.confused.end(),
                   [](const auto& a, const auto& b) { return a.count > b.count; });
  if (static_cast<int>(s.confused.size()) > confused_pairs) s.confused.resize(static_cast<size_t>(std::max(0, confused_pairs)));
  return s;
}

ordered_json score_classify(const ClassifyScoreOptions& o) {
  if (o.gold == "-" && o.ranks == "-") throw UsageError("only one input can be read from standard input");
  if (o.confused < 0) throw UsageError("--confused must not be negative");
  const ClassifyGold gold = parse_classify_gold(o.gold, o.field, o.id_field);
  const std::vector<RankedImage> ranks = parse_class_ranks(o.ranks, gold);
  const ClassifyScores s = evaluate_classify(gold, ranks, o.confused);
  if (s.min_results < static_cast<size_t>(s.classes))
    log::warn("{}: some images list only {} of the {} classes; rank with -k {} (or more), since classes and "
              "chance_top1 count the classes listed",
              shown(o.ranks), s.min_results, s.classes, s.classes);
  if (s.unreachable)
    log::warn("{}: {} image(s) have no class of theirs among the {} ranked classes (first: {}); they count as "
              "wrong: is --field the attribute the classes were made for?",
              gold.path, s.unreachable, s.classes, first_items(s.unreachable_ids));
  ordered_json out;
  out["top1"] = s.top1;
  out["top5"] = s.top5;
  out["images"] = s.images;
  out["classes"] = s.classes;
  out["chance_top1"] = s.chance_top1;
  out["majority_class"] = s.majority_class;
  out["majority_top1"] = s.majority_top1;
  out["multi_label"] = gold.multi_label;
  out["per_class"] = ordered_json::object();
  for (const auto& c : s.per_class) out["per_class"][c.name] = {{"images", c.images}, {"top1", c.top1}};
  out["confused"] = ordered_json::object();
  for (const auto& c : s.confused) out["confused"][c.gold + " -> " + c.predicted] = c.count;
  return out;
}

}  // namespace eve::eval
