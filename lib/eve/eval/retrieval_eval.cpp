#include "eve/eval/retrieval_eval.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "eve/core/error.h"
#include "eve/core/threads.h"
#include "eve/eval/first_items.h"
#include "eve/io/dtype.h"
#include "eve/io/jsonl.h"

namespace eve::eval {
namespace {

using io::json;

// Calls fn(line, number) for every non-blank line ("\n" or "\r\n" endings).
template <typename Fn>
void for_each_nonblank_line(std::string_view text, const Fn& fn) {
  uint64_t number = 0;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(begin, end - begin);
    ++number;
    if (line.find_first_not_of(" \t\r") != std::string_view::npos) fn(line, number);
    begin = end + 1;
  }
}

std::vector<std::string> captions_of(const json& entry, const std::string& path,
                                     const std::string& where) {
  if (!entry.is_object()) throw Error("expected an object with an image and its captions", path, where);
  auto it = entry.find("caption");
  const char* name = "caption";
  if (it == entry.end()) {
    it = entry.find("texts");
    name = "texts";
  }
  if (it == entry.end()) throw Error("expected a \"caption\" (or \"texts\") list", path, where);
  if (it->is_string()) {
    throw Error(fmt::format("\"{}\" is one string, expected the list of the image's captions", name),
                path, where, "a training file has one caption per entry; score against a test file");
  }
  if (!it->is_array()) throw Error(fmt::format("\"{}\" must be a list of strings", name), path, where);
  std::vector<std::string> out;
  for (const auto& c : *it) {
    if (!c.is_string()) throw Error(fmt::format("\"{}\" must be a list of strings", name), path, where);
    out.push_back(c.get<std::string>());
  }
  return out;
}

std::string image_of(const json& entry) {
  auto it = entry.find("image");
  if (it == entry.end()) return {};
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// Resolves query and result ids to entry positions.
class IdResolver {
 public:
  IdResolver(const RetrievalAnnotations& ann, const std::string& path) : ann_(ann), path_(path) {}

  size_t image(const json& id, const std::string& where) {
    if (id.is_number_integer()) return position(id, ann_.image_count(), "image", where);
    if (!id.is_string()) throw Error("an image id must be an integer or a string", path_, where);
    return image_named(id.get<std::string>(), where);
  }

  size_t text(const json& id, const std::string& where) {
    if (id.is_number_integer()) return position(id, ann_.text_count(), "text", where);
    if (!id.is_string()) throw Error("a text id must be an integer or a string", path_, where);
    const std::string& s = id.get_ref<const std::string&>();
    size_t hash = s.rfind('#');
    size_t k = 0;
    bool ok = hash != std::string::npos && hash + 1 < s.size() &&
              s.find_first_not_of("0123456789", hash + 1) == std::string::npos &&
              s.size() - hash - 1 <= 9;
    if (ok) k = std::stoul(s.substr(hash + 1));
    if (!ok) {
      throw Error("text id \"" + s + "\" is not \"<image>#<caption index>\"", path_, where);
    }
    size_t img = image_named(s.substr(0, hash), where);
    size_t count = ann_.text_offsets[img + 1] - ann_.text_offsets[img];
    if (k >= count) {
      throw Error(fmt::format("text id \"{}\": the image has {} caption(s)", s, count), path_, where);
    }
    return ann_.text_offsets[img] + k;
  }

 private:
  size_t position(const json& id, size_t count, const char* kind, const std::string& where) {
    if (id.is_number_unsigned() ? id.get<uint64_t>() >= count
                                : (id.get<int64_t>() < 0 || static_cast<uint64_t>(id.get<int64_t>()) >= count)) {
      throw Error(fmt::format("{} id {} is out of range (the annotation has {} {}s)", kind, id.dump(),
                              count, kind),
                  path_, where);
    }
    return static_cast<size_t>(id.get<uint64_t>());
  }

  size_t image_named(const std::string& name, const std::string& where) {
    if (by_name_.empty()) {
      auto add = [&](const std::string& name, size_t i) {
        auto [it, fresh] = by_name_.emplace(name, i);
        if (!fresh && it->second != i) it->second = kAmbiguous;
      };
      for (size_t i = 0; i < ann_.image_count(); ++i) {
        add(ann_.images[i], i);
        if (i < ann_.keys.size() && !ann_.keys[i].empty()) add(ann_.keys[i], i);
      }
    }
    auto it = by_name_.find(name);
    if (it == by_name_.end()) {
      // Store keys have no '/' or '.', paths do: a key against a file without keys gets the way out.
      const bool key_like = name.find_first_of("/.") == std::string::npos;
      throw Error("unknown image \"" + name + "\"", path_, where,
                  ann_.keys.empty() && key_like
                      ? "ids of eve-embed are the keys of a dataset dir: add --data DIR --split SPLIT"
                      : std::string());
    }
    if (it->second == kAmbiguous) {
      throw Error("image \"" + name + "\" appears more than once in " + ann_.path, path_, where,
                  "use entry positions (integers) as ids");
    }
    return it->second;
  }

  static constexpr size_t kAmbiguous = static_cast<size_t>(-1);
  const RetrievalAnnotations& ann_;
  const std::string& path_;
  std::unordered_map<std::string, size_t> by_name_;
};

// Infinite scores still order; a NaN does not.
[[noreturn]] void throw_nan(const std::string& source, size_t row, size_t col) {
  throw Error(io::non_finite_message("score", static_cast<int64_t>(row), static_cast<int64_t>(col), NAN),
              source);
}

// Number of entries of row[0..n) strictly above `best`.
int64_t count_above(const float* row, size_t n, float best, const std::string& source, size_t r) {
  int64_t above = 0;
  for (size_t c = 0; c < n; ++c) {
    const float x = row[c];
    if (!(x <= best)) {
      if (std::isnan(x)) throw_nan(source, r, c);
      ++above;
    }
  }
  return above;
}

double recall_at(const std::vector<int64_t>& ranks, int64_t k) {
  const auto hits = std::count_if(ranks.begin(), ranks.end(), [k](int64_t r) { return r < k; });
  return 100.0 * static_cast<double>(hits) / static_cast<double>(ranks.size());
}

}  // namespace

RetrievalAnnotations parse_retrieval_annotations(std::string_view text, const std::string& path) {
  RetrievalAnnotations ann;
  ann.path = path;
  ann.text_offsets.push_back(0);
  auto add = [&](const json& entry, const std::string& where) {
    std::vector<std::string> captions = captions_of(entry, path, where);
    ann.images.push_back(image_of(entry));
    for (size_t k = 0; k < captions.size(); ++k) {
      ann.text_image.push_back(static_cast<uint32_t>(ann.images.size() - 1));
      ann.texts.push_back(std::move(captions[k]));
    }
    ann.text_offsets.push_back(static_cast<uint32_t>(ann.text_image.size()));
  };
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && text[first] == '[') {
    json all = io::parse_json(text, path);
    for (size_t i = 0; i < all.size(); ++i) add(all[i], fmt::format("[{}]", i));
  } else {
    for_each_nonblank_line(text, [&](std::string_view line, uint64_t number) {
      add(io::parse_json(line, path, std::to_string(number)), std::to_string(number));
    });
  }
  if (ann.images.empty()) throw Error("no images in the annotation", path);
  return ann;
}

void add_image_keys(RetrievalAnnotations& ann, const RetrievalAnnotations& records) {
  // Caption lists joined by a byte no caption holds identify an image.
  auto captions = [](const RetrievalAnnotations& a, size_t i) {
    std::string joined;
    for (uint32_t t = a.text_offsets[i]; t < a.text_offsets[i + 1]; ++t) joined += a.texts[t] + '\x1f';
    return joined;
  };
  constexpr size_t kSeveral = static_cast<size_t>(-1);
  std::unordered_map<std::string, size_t> entry_of;
  for (size_t i = 0; i < ann.image_count(); ++i) {
    auto [it, fresh] = entry_of.emplace(captions(ann, i), i);
    if (!fresh) it->second = kSeveral;
  }
  ann.keys.assign(ann.image_count(), {});
  for (size_t r = 0; r < records.image_count(); ++r) {
    const std::string where = std::to_string(r + 1);
    auto it = entry_of.find(captions(records, r));
    if (it == entry_of.end()) {
      throw Error(fmt::format("image \"{}\": no entry of {} has its captions", records.images[r], ann.path),
                  records.path, where, "give the test file this split was prepared from");
    }
    if (it->second == kSeveral) {
      throw Error(fmt::format("image \"{}\": several entries of {} have its captions", records.images[r], ann.path),
                  records.path, where, "score against the dataset dir alone (--data without --ann)");
    }
    ann.keys[it->second] = records.images[r];
  }
}

std::vector<int64_t> image_to_text_ranks(const RetrievalAnnotations& ann, const float* i2t,
                                         const std::string& source, ThreadPool* pool) {
  const size_t rows = ann.image_count(), cols = ann.text_count();
  std::vector<int64_t> ranks(rows, kNotRetrieved);
  for_chunks(pool, rows, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const float* row = i2t + i * cols;
      const uint32_t a = ann.text_offsets[i], b = ann.text_offsets[i + 1];
      // The best rank among the image's texts is the rank of its best-scoring text.
      float best = -INFINITY;
      for (uint32_t t = a; t < b; ++t) {
        if (std::isnan(row[t])) throw_nan(source, i, t);
        best = std::max(best, row[t]);
      }
      const int64_t above = count_above(row, cols, best, source, i);
      if (a < b) ranks[i] = above;
    }
  });
  return ranks;
}

std::vector<int64_t> text_to_image_ranks(const RetrievalAnnotations& ann, const float* t2i,
                                         const std::string& source, ThreadPool* pool) {
  const size_t rows = ann.text_count(), cols = ann.image_count();
  std::vector<int64_t> ranks(rows);
  for_chunks(pool, rows, [&](size_t begin, size_t end) {
    for (size_t t = begin; t < end; ++t) {
      const float* row = t2i + t * cols;
      const uint32_t gt = ann.text_image[t];
      if (std::isnan(row[gt])) throw_nan(source, t, gt);
      ranks[t] = count_above(row, cols, row[gt], source, t);
    }
  });
  return ranks;
}

std::vector<int64_t> parse_rank_lists(std::string_view text, const std::string& path,
                                      const RetrievalAnnotations& ann,
                                      RetrievalDirection direction) {
  const bool from_images = direction == RetrievalDirection::image_to_text;
  const size_t queries = from_images ? ann.image_count() : ann.text_count();
  std::vector<int64_t> ranks(queries, kNotRetrieved);
  std::vector<uint64_t> line_of(queries, 0);
  IdResolver ids(ann, path);
  for_each_nonblank_line(text, [&](std::string_view line, uint64_t number) {
    const std::string where = std::to_string(number);
    json record = io::parse_json(line, path, where);
    if (!record.is_object() || !record.contains("query") || !record.contains("results")) {
      throw Error("expected {\"query\": id, \"results\": [[id, score], ...]}", path, where);
    }
    const size_t q = from_images ? ids.image(record["query"], where) : ids.text(record["query"], where);
    if (line_of[q]) {
      throw repeated_id_on_line(path, number, "query", record["query"].dump(), line_of[q]);
    }
    line_of[q] = number;
    const json& results = record["results"];
    if (!results.is_array()) throw Error("\"results\" must be a list of [id, score] pairs", path, where);
    std::vector<double> scores;
    std::vector<size_t> seen;
    double best = -INFINITY;
    bool found = false;
    for (const auto& r : results) {
      if (!r.is_array() || r.size() != 2 || !r[1].is_number()) {
        throw Error("\"results\" must be a list of [id, score] pairs, found " + r.dump(), path, where);
      }
      const size_t id = from_images ? ids.text(r[0], where) : ids.image(r[0], where);
      seen.push_back(id);
      const double score = r[1].get<double>();
      scores.push_back(score);
      const bool relevant = from_images ? ann.text_image[id] == q : ann.text_image[q] == id;
      if (relevant) {
        best = found ? std::max(best, score) : score;
        found = true;
      }
    }
    std::sort(seen.begin(), seen.end());
    if (auto d = std::adjacent_find(seen.begin(), seen.end()); d != seen.end()) {
      throw Error(fmt::format("result {} is listed twice", *d), path, where);
    }
    if (found) {
      ranks[q] = std::count_if(scores.begin(), scores.end(), [best](double s) { return s > best; });
    }
  });
  std::vector<size_t> missing;
  for (size_t q = 0; q < queries; ++q) {
    if (!line_of[q]) missing.push_back(q);
  }
  if (!missing.empty()) {
    throw Error(fmt::format("{} {} quer{} have no line (first positions: {})", missing.size(),
                            from_images ? "image" : "text", missing.size() == 1 ? "y" : "ies",
                            first_items(missing)),
                path, {}, "rank every image and every text of " + ann.path);
  }
  return ranks;
}

RetrievalScores retrieval_recall(const std::vector<int64_t>& image_to_text,
                                 const std::vector<int64_t>& text_to_image) {
  RetrievalScores s;
  s.images = image_to_text.size();
  s.texts = text_to_image.size();
  if (s.images == 0 || s.texts == 0) throw Error("retrieval needs at least one image and one text");
  s.txt_r1 = recall_at(image_to_text, 1);
  s.txt_r5 = recall_at(image_to_text, 5);
  s.txt_r10 = recall_at(image_to_text, 10);
  s.img_r1 = recall_at(text_to_image, 1);
  s.img_r5 = recall_at(text_to_image, 5);
  s.img_r10 = recall_at(text_to_image, 10);
  s.txt_r_mean = (s.txt_r1 + s.txt_r5 + s.txt_r10) / 3;
  s.img_r_mean = (s.img_r1 + s.img_r5 + s.img_r10) / 3;
  s.r_mean = (s.txt_r_mean + s.img_r_mean) / 2;
  return s;
}

}  // namespace eve::eval
