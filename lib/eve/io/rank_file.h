// Ranks files as text: the one place that writes a ranks line, and a reader that keeps
// every id and score exactly as written, so that tools which rewrite ranks (merge, dupes,
// leakage) change no byte of what they pass on. Torch-free.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace eve::io {

class LineReader;

// One result: the gallery id (JSON text), the score as written and its float32 value.
struct RankHit {
  std::string id;
  std::string score_text;
  float score = 0;
};

// One line of a ranks file: {"query": ID, "results": [[ID, SCORE], ...]}.
struct RankLine {
  std::string query;  // JSON text
  std::vector<RankHit> hits;
};

// How a line is spaced: eve-rank writes ", " and ": " between items; eve-finetune's
// prediction ranks are a compact JSON dump, without spaces, the layout they have always had.
// The reader takes both.
enum class RankLayout { spaced, compact };

// One ranks line (with its newline), appended to buf piece by piece. Ids and scores are
// JSON text, written as given.
void begin_rank_line(std::string& buf, std::string_view query, RankLayout layout = RankLayout::spaced);
void add_rank_hit(std::string& buf, size_t position, std::string_view id, std::string_view score,
                  RankLayout layout = RankLayout::spaced);
void end_rank_line(std::string& buf);
void append_rank_line(std::string& buf, const RankLine& line, RankLayout layout = RankLayout::spaced);

// Reads a ranks file line by line. Anything else (not JSON, another shape, a score that is
// not a finite float32, results not best first) is an Error naming the file and line.
class RankReader {
 public:
  explicit RankReader(const std::string& path);
  ~RankReader();
  bool next(RankLine& line);
  // The number of the line last read (1-based), as Error's "where" takes it.
  std::string where() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<io::LineReader> lines_;
  std::string text_;
};

// "<ranks without .jsonl>.meta.json": where eve-rank describes a ranks file.
std::string rank_meta_path(const std::string& ranks);
// The meta file of a ranks file, parsed; null when the ranks are standard input or have no
// meta file. Throws eve::Error naming the meta file when it is not valid JSON or not an
// eve-rank meta file ("format": "eve-rank-meta 1").
nlohmann::ordered_json read_rank_meta(const std::string& ranks);

}  // namespace eve::io
