#include "eve/text/tokenize.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <memory>

#include "eve/core/signals.h"
#include "eve/core/threads.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"

namespace eve::text {

const std::vector<std::string> kTextFields = {"text", "texts", "question", "sentence"};

namespace {

using io::ordered_json;

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

ordered_json parse_record(std::string_view line) {
  ordered_json rec;
  try {
    rec = io::parse_ordered_json(line, {});
  } catch (const Error& e) {
    bool utf8 = e.message() == "invalid UTF-8";
    throw RecordError(e.message(), utf8 ? "invalid UTF-8" : "invalid JSON");
  }
  if (!rec.is_object()) throw RecordError("expected a JSON object", "not an object");
  return rec;
}

// The fields of `rec` to process: every one of `wanted` (each must be present), or, when
// `wanted` is empty, those of `defaults` the record has (at least one).
std::vector<std::string> select_fields(const ordered_json& rec,
                                       const std::vector<std::string>& wanted,
                                       const std::vector<std::string>& defaults) {
  std::vector<std::string> out;
  if (!wanted.empty()) {
    for (const auto& f : wanted)
      if (!rec.contains(f)) throw RecordError("missing field " + quoted(f), "missing field");
    return wanted;
  }
  for (const auto& f : defaults)
    if (rec.contains(f)) out.push_back(f);
  if (out.empty()) {
    std::string names;
    for (size_t i = 0; i < defaults.size(); ++i)
      names += (i == 0 ? "" : i + 1 == defaults.size() ? " or " : ", ") + defaults[i];
    throw RecordError("no field " + names, "missing field");
  }
  return out;
}

// The strings of a text field: a string, or a non-empty list of strings.
std::vector<const std::string*> field_strings(const ordered_json& v, const std::string& field,
                                              bool& is_list) {
  is_list = v.is_array();
  if (v.is_string()) return {&v.get_ref<const std::string&>()};
  if (!v.is_array())
    throw RecordError("field " + quoted(field) + " must be a string or a list of strings, not " +
                          v.type_name(),
                      "wrong type");
  if (v.empty()) throw RecordError("field " + quoted(field) + " is an empty list", "wrong type");
  std::vector<const std::string*> out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string())
      throw RecordError("field " + quoted(field) + " item " + std::to_string(i) +
                            " must be a string, not " + v[i].type_name(),
                        "wrong type");
    out.push_back(&v[i].get_ref<const std::string&>());
  }
  return out;
}

CleanMode field_mode(const std::optional<CleanMode>& clean, const std::string& field) {
  if (clean) return *clean;
  return field == "question" ? CleanMode::question : CleanMode::caption;
}

// Rebuilds `rec` with added[k] inserted right after key k; keys in `replaced` are dropped
// from their old place.
ordered_json insert_after(ordered_json& rec, std::vector<std::pair<std::string, ordered_json>>& added,
                          const std::vector<std::string>& fields) {
  ordered_json out = ordered_json::object();
  for (auto it = rec.begin(); it != rec.end(); ++it) {
    const std::string& key = it.key();
    bool replaced = std::any_of(added.begin(), added.end(),
                                [&](const auto& a) { return a.first == key; });
    if (replaced) continue;
    out[key] = std::move(it.value());
    for (size_t i = 0; i < fields.size(); ++i)
      if (fields[i] == key) out[added[i].first] = std::move(added[i].second);
  }
  return out;
}

void append_int(std::string& out, int v) {
  char buf[16];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void check_unique_keys(const std::vector<std::pair<std::string, ordered_json>>& added,
                       const std::vector<std::string>& fields) {
  for (size_t i = 0; i < added.size(); ++i)
    for (size_t j = i + 1; j < added.size(); ++j)
      if (added[i].first == added[j].first)
        throw RecordError("fields " + quoted(fields[i]) + " and " + quoted(fields[j]) +
                              " would both write " + quoted(added[i].first) +
                              "; choose one with --field",
                          "ambiguous fields");
}

struct LineItem {
  std::string line, out, error, reason;
  uint64_t line_no = 0;
  bool bad = false;
};

void run_item(LineItem& item, const std::function<std::string(std::string_view)>& fn) {
  try {
    item.out = fn(item.line);
    item.bad = false;
  } catch (const RecordError& e) {
    item.bad = true, item.error = e.message(), item.reason = e.reason();
  } catch (const EmptyText& e) {
    item.bad = true, item.error = e.message(), item.reason = "empty after cleaning";
  } catch (const Error& e) {
    item.bad = true, item.error = e.message(), item.reason = e.message();
  }
}

}  // namespace

std::string LineStats::summary() const {
  if (skipped == 0) return {};
  std::string s = "skipped " + std::to_string(skipped) + " of " + std::to_string(records) +
                  " records:";
  bool first = true;
  for (const auto& [reason, n] : reasons) {
    s += (first ? " " : ", ") + std::to_string(n) + " " + reason;
    first = false;
  }
  return s;
}

LineStats process_lines(const std::vector<std::string>& inputs, int threads,
                        const BadRecordOptions& bad, bool skip_blank,
                        const std::function<std::string(std::string_view)>& fn,
                        const std::function<void(std::string_view)>& sink) {
  const int n_threads = resolve_threads(threads);
  std::unique_ptr<ThreadPool> pool;
  if (n_threads > 1) pool = std::make_unique<ThreadPool>(n_threads);
  const size_t batch = 2048 * static_cast<size_t>(n_threads);
  std::vector<LineItem> items(batch);
  LineStats stats;
  for (const auto& input : inputs) {
    io::LineReader reader(input);
    const std::string file = input == "-" ? "<stdin>" : input;
    bool more = true;
    while (more) {
      size_t n = 0;
      while (n < batch && (more = reader.next(items[n].line))) {
        if (skip_blank && items[n].line.find_first_not_of(" \t\r") == std::string::npos) continue;
        items[n++].line_no = reader.line_number();
      }
      if (pool && n > 1) {
        size_t chunks = std::min(n, static_cast<size_t>(n_threads) * 4);
        parallel_for(*pool, chunks, [&](size_t c) {
          for (size_t i = c * n / chunks, e = (c + 1) * n / chunks; i < e; ++i)
            run_item(items[i], fn);
        });
      } else {
        for (size_t i = 0; i < n; ++i) run_item(items[i], fn);
      }
      for (size_t i = 0; i < n; ++i) {
        ++stats.records;
        if (!items[i].bad) {
          if (!items[i].out.empty()) sink(items[i].out);
          continue;
        }
        if (!bad.skip_bad)
          throw Error(items[i].error, file, std::to_string(items[i].line_no),
                      "use --skip-bad to skip such records");
        ++stats.skipped;
        ++stats.reasons[items[i].reason];
      }
      signals::throw_if_stopped();
    }
  }
  if (stats.skipped > 0 &&
      static_cast<double>(stats.skipped) > bad.max_bad * static_cast<double>(stats.records))
    throw TooManyBadInputs(stats.summary() + ", more than --max-bad " +
                           std::to_string(bad.max_bad) + " allows");
  return stats;
}

LineStats clean_lines(const CleanOptions& opts,
                      const std::function<void(std::string_view)>& sink) {
  return process_lines(opts.inputs, opts.threads, opts.bad, /*skip_blank=*/false,
                       [&](std::string_view line) {
                         return clean_text(line, opts.clean, opts.max_words) + "\n";
                       },
                       sink);
}

RecordEncoder::RecordEncoder(const EncodeOptions& opts, TokenizerInfo info, PieceEncoder encode)
    : opts_(opts), info_(info), encode_(std::move(encode)) {
  if (opts_.max_tokens < 3)
    throw UsageError("--max-tokens must be at least 3 ([CLS], one token, [SEP])");
}

CleanMode RecordEncoder::mode_for(const std::string& field) const {
  return field_mode(opts_.clean, field);
}

std::vector<int> RecordEncoder::encode_text(std::string_view text, CleanMode mode) const {
  std::vector<int> pieces = encode_(clean_text(text, mode, opts_.max_words));
  const size_t keep = std::min(pieces.size(), static_cast<size_t>(opts_.max_tokens - 2));
  std::vector<int> ids;
  ids.reserve(keep + 2);
  ids.push_back(info_.cls_id);
  ids.insert(ids.end(), pieces.begin(), pieces.begin() + static_cast<std::ptrdiff_t>(keep));
  ids.push_back(info_.sep_id);
  return ids;
}

std::string RecordEncoder::encode_json_line(std::string_view line) const {
  ordered_json rec = parse_record(line);
  std::vector<std::string> fields = select_fields(rec, opts_.fields, kTextFields);
  std::vector<std::pair<std::string, ordered_json>> added;
  for (const auto& field : fields) {
    bool is_list = false;
    auto texts = field_strings(rec[field], field, is_list);
    ordered_json value = ordered_json::array();
    for (size_t i = 0; i < texts.size(); ++i) {
      try {
        value.push_back(encode_text(*texts[i], mode_for(field)));
      } catch (const EmptyText&) {
        throw RecordError("field " + quoted(field) +
                              (is_list ? " item " + std::to_string(i) : std::string()) +
                              " is empty after cleaning",
                          "empty after cleaning");
      }
    }
    if (is_list)
      added.emplace_back("ids_list", std::move(value));
    else
      added.emplace_back("ids", std::move(value[0]));
  }
  check_unique_keys(added, fields);
  return io::to_jsonl_line(insert_after(rec, added, fields));
}

std::string RecordEncoder::encode_plain_line(std::string_view line) const {
  std::vector<int> ids = encode_text(line, opts_.clean.value_or(CleanMode::caption));
  std::string out;
  out.reserve(ids.size() * 5);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out.push_back(' ');
    append_int(out, ids[i]);
  }
  out.push_back('\n');
  return out;
}

RecordDecoder::RecordDecoder(const DecodeOptions& opts, TokenizerInfo info, PieceDecoder decode,
                             std::function<std::string(int)> id_to_piece)
    : opts_(opts), info_(info), decode_(std::move(decode)), id_to_piece_(std::move(id_to_piece)) {}

std::string RecordDecoder::decode_ids(const std::vector<int>& ids) const {
  for (int id : ids)
    if (id < 0 || id >= info_.vocab_size)
      throw RecordError("token id " + std::to_string(id) + " outside the vocabulary (size " +
                            std::to_string(info_.vocab_size) + ")",
                        "bad token id");
  std::string out;
  std::vector<int> run;
  auto flush = [&] {
    if (run.empty()) return;
    std::string text = decode_(run);
    if (!out.empty() && !text.empty()) out.push_back(' ');
    out += text;
    run.clear();
  };
  for (int id : ids) {
    if (id == info_.unk_id || !info_.is_special(id)) {
      run.push_back(id);
    } else if (opts_.keep_special) {
      flush();
      if (!out.empty()) out.push_back(' ');
      out += id_to_piece_(id);
    }
  }
  flush();
  return out;
}

std::string RecordDecoder::decode_json_line(std::string_view line) const {
  ordered_json rec = parse_record(line);
  std::vector<std::string> fields = select_fields(rec, opts_.fields, {"ids", "ids_list"});
  std::vector<std::pair<std::string, ordered_json>> added;
  auto as_ids = [&](const ordered_json& v, const std::string& field) {
    std::vector<int> ids;
    if (!v.is_array())
      throw RecordError("field " + quoted(field) + " must be a list of token ids", "wrong type");
    for (const auto& x : v) {
      if (!x.is_number_integer())
        throw RecordError("field " + quoted(field) + " must be a list of token ids", "wrong type");
      int64_t id = x.get<int64_t>();
      ids.push_back(id < 0 || id > INT32_MAX ? -1 : static_cast<int>(id));
      if (ids.back() < 0)
        throw RecordError("token id " + x.dump() + " outside the vocabulary (size " +
                              std::to_string(info_.vocab_size) + ")",
                          "bad token id");
    }
    return ids;
  };
  for (const auto& field : fields) {
    const ordered_json& v = rec[field];
    std::string key = field == "ids"        ? "decoded"
                      : field == "ids_list" ? "decoded_list"
                                            : field + "_decoded";
    if (v.is_array() && !v.empty() && v[0].is_array()) {
      ordered_json list = ordered_json::array();
      for (const auto& inner : v) list.push_back(decode_ids(as_ids(inner, field)));
      added.emplace_back(key, std::move(list));
    } else {
      added.emplace_back(key, decode_ids(as_ids(v, field)));
    }
  }
  check_unique_keys(added, fields);
  return io::to_jsonl_line(insert_after(rec, added, fields));
}

std::string RecordDecoder::decode_plain_line(std::string_view line) const {
  std::vector<int> ids;
  const char* p = line.data();
  const char* end = p + line.size();
  while (p < end) {
    if (*p == ' ' || *p == '\t' || *p == '\r') {
      ++p;
      continue;
    }
    const char* start = p;
    while (p < end && *p != ' ' && *p != '\t' && *p != '\r') ++p;
    int id = 0;
    auto r = std::from_chars(start, p, id);
    if (r.ec != std::errc() || r.ptr != p)
      throw RecordError("not a token id: '" + std::string(start, p) + "'", "not a token id");
    ids.push_back(id);
  }
  return decode_ids(ids) + "\n";
}

std::vector<std::string> training_texts(std::string_view line, bool jsonl,
                                        const TrainOptions& opts) {
  std::vector<std::string> out;
  auto add = [&](std::string_view text, CleanMode mode) {
    try {
      out.push_back(clean_text(text, mode, opts.max_words));
    } catch (const EmptyText&) {
      // Texts that clean to nothing carry nothing to learn from.
    }
  };
  if (!jsonl) {
    add(line, opts.clean.value_or(CleanMode::caption));
    return out;
  }
  ordered_json rec = parse_record(line);
  for (const auto& field : select_fields(rec, opts.fields, kTextFields)) {
    bool is_list = false;
    for (const std::string* s : field_strings(rec[field], field, is_list))
      add(*s, field_mode(opts.clean, field));
  }
  return out;
}

bool is_jsonl_path(const std::string& path) {
  return path.size() > 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
}

std::vector<std::string> expand_training_inputs(const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  for (const auto& in : inputs) {
    if (in == "-") {
      out.push_back(in);
      continue;
    }
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::directory_iterator(in, ec))
        if (entry.is_regular_file() && is_jsonl_path(entry.path().string()))
          found.push_back(entry.path().string());
      if (ec) throw Error("cannot list directory: " + ec.message(), in);
      if (found.empty())
        throw Error("no *.jsonl record files in this directory", in,
                    {}, "pass a dataset directory written by eve-prep, or text files");
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else if (fs::exists(in, ec)) {
      out.push_back(in);
    } else {
      throw Error("no such file or directory", in);
    }
  }
  return out;
}

}  // namespace eve::text
