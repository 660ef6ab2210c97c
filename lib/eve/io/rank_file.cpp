#include "eve/io/rank_file.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>

#include "eve/core/error.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"

namespace eve::io {

void begin_rank_line(std::string& buf, std::string_view query, RankLayout layout) {
  const bool spaced = layout == RankLayout::spaced;
  buf += spaced ? "{\"query\": " : "{\"query\":";
  buf += query;
  buf += spaced ? ", \"results\": [" : ",\"results\":[";
}

void add_rank_hit(std::string& buf, size_t position, std::string_view id, std::string_view score,
                  RankLayout layout) {
  const char* comma = layout == RankLayout::spaced ? ", " : ",";
  if (position) buf += comma;
  buf += '[';
  buf += id;
  buf += comma;
  buf += score;
  buf += ']';
}

void end_rank_line(std::string& buf) { buf += "]}\n"; }

void append_rank_line(std::string& buf, const RankLine& line, RankLayout layout) {
  begin_rank_line(buf, line.query, layout);
  for (size_t j = 0; j < line.hits.size(); ++j)
    add_rank_hit(buf, j, line.hits[j].id, line.hits[j].score_text, layout);
  end_rank_line(buf);
}

std::string rank_meta_path(const std::string& ranks) {
  std::string stem = ranks;
  if (stem.size() > 6 && stem.compare(stem.size() - 6, 6, ".jsonl") == 0) stem.resize(stem.size() - 6);
  return stem + ".meta.json";
}

nlohmann::ordered_json read_rank_meta(const std::string& ranks) {
  const std::string path = rank_meta_path(ranks);
  if (ranks == "-" || !file_exists(path)) return nullptr;
  nlohmann::ordered_json meta;
  try {
    meta = nlohmann::ordered_json::parse(read_file(path));
  } catch (const std::exception& e) {
    throw Error(std::string("not a valid meta file: ") + describe_exception(e), path);
  }
  if (!meta.is_object() || meta.value("format", "") != "eve-rank-meta 1")
    throw Error("not an eve-rank meta file (no \"format\": \"eve-rank-meta 1\")", path);
  return meta;
}

namespace {

size_t skip_ws(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  return i;
}

// Where the JSON value starting at s[i] ends. The line has been checked to be JSON, so
// only strings (whose brackets and quotes do not count) and nesting need care.
size_t value_end(std::string_view s, size_t i) {
  if (s[i] == '"') {
    for (++i; s[i] != '"'; ++i)
      if (s[i] == '\\') ++i;
    return i + 1;
  }
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    for (;; ++i) {
      const char c = s[i];
      if (c == '"') {
        i = value_end(s, i) - 1;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && --depth == 0) {
        return i + 1;
      }
    }
  }
  while (i < s.size() && s[i] != ',' && s[i] != ']' && s[i] != '}' && s[i] != ' ' && s[i] != '\t') ++i;
  return i;
}

}  // namespace

RankReader::RankReader(const std::string& path) : path_(path), lines_(std::make_unique<io::LineReader>(path)) {}
RankReader::~RankReader() = default;

std::string RankReader::where() const { return std::to_string(lines_->line_number()); }

bool RankReader::next(RankLine& out) {
  if (!lines_->next(text_)) return false;
  const std::string_view s = text_;
  auto bad = [&](const std::string& why) {
    return Error(why, path_, where(), "expected eve-rank's {\"query\": ID, \"results\": [[ID, SCORE], ...]}");
  };
  if (!nlohmann::json::accept(s)) throw bad("not a JSON line");
  size_t i = skip_ws(s, 0);
  if (s[i] != '{') throw bad("not a JSON object");
  size_t results = std::string_view::npos;
  bool have_query = false;
  for (i = skip_ws(s, i + 1); s[i] != '}';) {
    const size_t key_end = value_end(s, i);
    const std::string_view key = s.substr(i + 1, key_end - i - 2);
    i = skip_ws(s, skip_ws(s, key_end) + 1);  // past ':'
    const size_t end = value_end(s, i);
    if (key == "query") {
      out.query.assign(s.substr(i, end - i));
      have_query = true;
    } else if (key == "results") {
      results = i;
    }
    i = skip_ws(s, end);
    if (s[i] == ',') i = skip_ws(s, i + 1);
  }
  if (!have_query) throw bad("no \"query\"");
  if (results == std::string_view::npos) throw bad("no \"results\"");
  if (s[results] != '[') throw bad("\"results\" is not an array");
  out.hits.clear();
  for (i = skip_ws(s, results + 1); s[i] != ']';) {
    const size_t n = out.hits.size();
    const std::string item = "result " + std::to_string(n);
    if (s[i] != '[') throw bad(item + " is not an [ID, SCORE] pair");
    i = skip_ws(s, i + 1);
    if (s[i] == ']') throw bad(item + " is not an [ID, SCORE] pair");
    RankHit h;
    size_t end = value_end(s, i);
    h.id.assign(s.substr(i, end - i));
    i = skip_ws(s, end);
    if (s[i] != ',') throw bad(item + " is not an [ID, SCORE] pair");
    i = skip_ws(s, i + 1);
    end = value_end(s, i);
    h.score_text.assign(s.substr(i, end - i));
    const auto r = std::from_chars(s.data() + i, s.data() + end, h.score);
    if (r.ec != std::errc() || r.ptr != s.data() + end || !std::isfinite(h.score))
      throw bad(item + " has the score " + h.score_text + ", not a finite float32 number");
    i = skip_ws(s, end);
    if (s[i] != ']') throw bad(item + " is not an [ID, SCORE] pair");
    if (n > 0 && h.score > out.hits[n - 1].score)
      throw bad(item + " scores " + h.score_text + ", more than the one before it: results must be best first");
    out.hits.push_back(std::move(h));
    i = skip_ws(s, i + 1);
    if (s[i] == ',') i = skip_ws(s, i + 1);
  }
  return true;
}

}  // namespace eve::io
