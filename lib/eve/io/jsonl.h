// JSON Lines: one JSON value per line. Errors name file and line; blank lines are skipped;
// invalid UTF-8 is reported, never passed on.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "eve/io/file.h"

namespace eve::io {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

// Arrays/objects nested deeper than this are rejected when parsing (real records nest a
// few levels; serialising a very deep value would exhaust the stack).
constexpr size_t kMaxJsonDepth = 512;

// Parses one JSON document; `file` and `where` only name it in errors.
json parse_json(std::string_view text, const std::string& file, const std::string& where = {});
ordered_json parse_ordered_json(std::string_view text, const std::string& file,
                                const std::string& where = {});
// Reads and parses a whole JSON file ("-" = stdin).
json read_json(const std::string& path);

class JsonlReader {
 public:
  explicit JsonlReader(const std::string& path, size_t max_line = LineReader::kDefaultMaxLine);
  // Next record (an object, unless allow_any is set). False at end of input.
  bool next(json& record);
  bool next(ordered_json& record);
  uint64_t line_number() const { return lines_.line_number(); }
  const std::string& path() const { return lines_.path(); }
  std::string where() const { return lines_.where(); }

 private:
  bool next_line(std::string& line);
  LineReader lines_;
  std::string buf_;
};

// Serialises one record as a single line with "\n" (UTF-8 kept as is, never escaped).
// Throws eve::Error for a string that is not valid UTF-8; `where` names the record in it.
// A NaN or infinite number is written as null (as every dump() of these types does), never
// as a bare nan/inf that no JSON reader takes; writers that must not lose such a value
// check it first.
std::string to_jsonl_line(const json& record, const std::string& where = {});
std::string to_jsonl_line(const ordered_json& record, const std::string& where = {});

// dump(indent) for reports (manifests, logs of what was read): bytes that are not valid
// UTF-8, say in a file name, become U+FFFD instead of throwing.
std::string dump_lenient(const json& value, int indent = -1);
std::string dump_lenient(const ordered_json& value, int indent = -1);

}  // namespace eve::io
