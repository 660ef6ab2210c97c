// Merging dataset dirs: every check first (manifests, indices, record files, shard runs,
// duplicate keys), then the merged dir is built beside its final name and renamed into
// place.
#include "eve/data/merge.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>
#include <string_view>
#include <unordered_map>

#include "eve/core/error.h"
#include "eve/core/signals.h"
#include "eve/core/version.h"
#include "eve/io/file.h"
#include "eve/io/image_store.h"
#include "eve/io/jsonl.h"

namespace eve::data {
namespace {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

constexpr const char* kPrefix = "images";
constexpr const char* kFingerprintTag = "eve-prep merge 1";
constexpr size_t kMaxRecordsListed = 10;  // records named per skipped image, as eve-prep does

// 64-bit FNV-1a over everything that decides the merged output.
struct Fnv {
  uint64_t h = 1469598103934665603ull;
  void add(std::string_view s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  }
  void field(std::string_view s) {
    add(s);
    add(std::string_view("\0", 1));
  }
};

struct RecordFile {
  uint64_t bytes = 0, lines = 0;
  bool needs_newline = false;  // last line without "\n": one is added when concatenating
};

struct Part {
  std::string dir;  // as given
  std::string manifest_path, index_path;
  std::string manifest_text, index_text;
  ordered_json manifest;
  std::unique_ptr<io::ImageStore> store;
  uint32_t shards = 0;
  int shard_index = 0, shard_count = 1;
  std::map<std::string, RecordFile> records;  // *.jsonl by name
};

struct IndexEntry {
  const std::string* key;
  uint32_t shard;  // renumbered
  io::ImageLocation loc;
};

std::string key_where(const std::string& key) { return "key '" + key + "'"; }

// Calls fn with consecutive chunks of the file's bytes.
template <class Fn>
void for_each_chunk(const std::string& path, Fn&& fn) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw Error(std::string("cannot open: ") + std::strerror(errno), path);
  std::string buf(size_t{1} << 20, '\0');
  for (;;) {
    size_t n = std::fread(buf.data(), 1, buf.size(), f.get());
    if (n > 0) fn(std::string_view(buf.data(), n));
    if (n < buf.size()) {
      if (std::ferror(f.get())) throw Error("read error", path);
      return;
    }
  }
}

const ordered_json& manifest_field(const Part& p, const char* key, ordered_json::value_t type) {
  auto it = p.manifest.find(key);
  if (it == p.manifest.end() || it->type() != type)
    throw Error(fmt::format("manifest has no {} \"{}\"", type == ordered_json::value_t::string ? "string" : "valid", key),
                p.manifest_path, {}, "is this a dataset dir written by eve-prep?");
  return *it;
}

uint64_t manifest_count(const Part& p, const ordered_json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number_unsigned())
    throw Error(fmt::format("expected a count \"{}\"", key), p.manifest_path, where);
  return it->get<uint64_t>();
}

// Reads and checks one part: manifest, index (verified against the shards), record files.
Part load_part(const std::string& dir) {
  Part p;
  p.dir = dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw Error("not a directory", dir, {}, "each PART is a dataset dir written by eve-prep");
  p.manifest_path = dir + "/manifest.json";
  if (!io::file_exists(p.manifest_path))
    throw Error("no manifest.json", dir, {}, "each PART is a dataset dir written by eve-prep, finished");
  p.manifest_text = io::read_file(p.manifest_path);
  p.manifest = io::parse_ordered_json(p.manifest_text, p.manifest_path);
  if (!p.manifest.is_object()) throw Error("manifest is not a JSON object", p.manifest_path);
  manifest_field(p, "task", ordered_json::value_t::string);
  manifest_field(p, "image_policy", ordered_json::value_t::object);
  manifest_field(p, "sources", ordered_json::value_t::array);
  manifest_field(p, "splits", ordered_json::value_t::object);
  manifest_field(p, "skipped", ordered_json::value_t::array);
  const auto& counts = manifest_field(p, "counts", ordered_json::value_t::object);
  manifest_count(p, counts, "records", "counts");
  manifest_count(p, counts, "records_skipped", "counts");
  const auto& shard = manifest_field(p, "shard", ordered_json::value_t::object);
  const uint64_t index = manifest_count(p, shard, "index", "shard"), count = manifest_count(p, shard, "count", "shard");
  if (count < 1 || index >= count || count > 1'000'000)
    throw Error(fmt::format("shard {}/{} is not a part of a --shard run", index, count), p.manifest_path, "shard");
  p.shard_index = static_cast<int>(index);
  p.shard_count = static_cast<int>(count);
  for (const auto& [name, info] : p.manifest["splits"].items()) {
    if (!info.is_object() || !info.contains("file") || !info["file"].is_string())
      throw Error("expected {\"file\", \"records\"}", p.manifest_path, "splits." + name);
    const std::string file = info["file"].get<std::string>();
    if (!io::file_exists(dir + "/" + file))
      throw Error(fmt::format("no {}, which its manifest.json lists", file), dir, {}, "the dataset dir is incomplete");
  }

  p.store = std::make_unique<io::ImageStore>(dir, kPrefix);  // verifies the index and shards
  p.index_path = io::image_index_path(dir, kPrefix);
  p.index_text = io::read_file(p.index_path);
  const size_t at = p.index_text.find("\nshards ");  // the store has verified the header
  p.shards = static_cast<uint32_t>(std::strtoul(p.index_text.c_str() + at + 8, nullptr, 10));

  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.size() > 6 && name.compare(name.size() - 6, 6, ".jsonl") == 0 && e.is_regular_file())
      p.records[name];
  }
  return p;
}

// `key` of part p differs from part q: the first differing sub-key of an object, for the
// message.
std::string first_difference(const ordered_json& a, const ordered_json& b, const std::string& key,
                             std::string& va, std::string& vb) {
  if (a.is_object() && b.is_object()) {
    std::set<std::string> names;
    for (const auto& [k, v] : a.items()) names.insert(k);
    for (const auto& [k, v] : b.items()) names.insert(k);
    for (const auto& k : names) {
      const ordered_json none = "(absent)";
      const ordered_json& x = a.contains(k) ? a[k] : none;
      const ordered_json& y = b.contains(k) ? b[k] : none;
      if (x != y) return first_difference(x, y, key + "." + k, va, vb);
    }
  }
  va = a.dump();
  vb = b.dump();
  return key;
}

void check_same(const Part& p, const Part& first, const char* key) {
  if (p.manifest[key] == first.manifest[key]) return;
  std::string va, vb;
  const std::string where = first_difference(p.manifest[key], first.manifest[key], key, va, vb);
  throw Error(fmt::format("\"{}\" is {}, but {} has {}", where, va, first.manifest_path, vb), p.manifest_path, {},
              "merge parts of one task prepared with the same image options");
}

std::string canonical_or_self(const std::string& path) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(path, ec);
  return ec ? path : c.string();
}

// The argument checks (exit 2): --out is not a part, no part is given twice.
void check_arguments(const MergeOptions& o) {
  if (o.out.empty()) throw UsageError("missing --out DIR");
  if (o.parts.empty()) throw UsageError("merge needs at least one PART (a dataset dir)");
  const std::string out = canonical_or_self(o.out);
  std::map<std::string, std::string> seen;
  for (const auto& part : o.parts) {
    const std::string c = canonical_or_self(part);
    if (c == out) throw UsageError(fmt::format("--out {} is one of the parts", o.out));
    auto [it, fresh] = seen.emplace(c, part);
    if (!fresh) throw UsageError(fmt::format("part {} is given twice (also as {})", part, it->second));
  }
}

// Parts prepared from the same inputs (equal "sources") are one --shard run: their counts
// agree and no index repeats. Returns a warning per run with parts missing.
std::vector<std::string> check_shard_runs(const std::vector<Part>& parts) {
  std::map<std::string, std::vector<const Part*>> runs;
  std::vector<std::string> order;
  for (const auto& p : parts) {
    auto& run = runs[p.manifest["sources"].dump()];
    if (run.empty()) order.push_back(p.manifest["sources"].dump());
    run.push_back(&p);
  }
  std::vector<std::string> warnings;
  for (const auto& sources : order) {
    const auto& run = runs[sources];
    const Part& first = *run.front();
    std::map<int, const Part*> by_index;
    for (const Part* p : run) {
      if (p->shard_count != first.shard_count)
        throw Error(fmt::format("part {}/{} of the same inputs as {}, which is part {}/{}", p->shard_index,
                                p->shard_count, first.dir, first.shard_index, first.shard_count),
                    p->manifest_path, "shard", "merge the parts of one --shard run, all with the same N");
      auto [it, fresh] = by_index.emplace(p->shard_index, p);
      if (!fresh)
        throw Error(fmt::format("part {}/{} is also {}", p->shard_index, p->shard_count, it->second->dir),
                    p->manifest_path, "shard", "each part of a --shard run is merged once");
    }
    if (static_cast<int>(run.size()) == first.shard_count) continue;
    std::string missing;
    for (int i = 0; i < first.shard_count; ++i)
      if (!by_index.count(i)) missing += fmt::format("{}{}/{}", missing.empty() ? "" : ", ", i, first.shard_count);
    warnings.push_back(fmt::format("merging {} of the {} parts of the --shard run of {}; missing: {}", run.size(),
                                   first.shard_count, first.dir, missing));
  }
  return warnings;
}

// A record file may be missing from part p only when p's own manifest has no records of its
// split while part q of the same run (the same sources) has: all the run's records of that
// split fell into other parts, and eve-prep writes no file for a split a part has none of.
bool split_elsewhere_in_run(const Part& p, const Part& q, const std::string& file) {
  if (p.manifest["sources"] != q.manifest["sources"]) return false;
  for (const auto& [split, info] : q.manifest["splits"].items())
    if (file.compare(0, split.size() + 1, split + ".") == 0 && !p.manifest["splits"].contains(split)) return true;
  return false;
}

void check_record_files(const std::vector<Part>& parts) {
  for (const auto& p : parts)
    for (const auto& q : parts)
      for (const auto& [name, info] : q.records)
        if (!p.records.count(name) && !split_elsewhere_in_run(p, q, name))
          throw Error(fmt::format("no {}, which {} has", name, q.dir), p.dir, {},
                      "every part must hold the same record files: prepare and encode every part the same way");
}

// Reads every record file once: sizes and lines for the report and the up-to-date check,
// bytes into the fingerprint.
void scan_record_files(std::vector<Part>& parts, Fnv& fp) {
  for (auto& p : parts)
    for (auto& [name, info] : p.records) {
      fp.field(name);
      char last = '\n';
      for_each_chunk(p.dir + "/" + name, [&](std::string_view chunk) {
        fp.add(chunk);
        info.bytes += chunk.size();
        info.lines += static_cast<uint64_t>(std::count(chunk.begin(), chunk.end(), '\n'));
        last = chunk.back();
      });
      info.needs_newline = last != '\n';
      if (info.needs_newline) ++info.lines;
      fp.field({});
    }
}

// The merged index: every part's entries in part order, shards renumbered, a key kept at
// its first part (its bytes must be the same in every later part).
std::vector<IndexEntry> merge_index(const std::vector<Part>& parts, std::vector<std::string>& keys,
                                    uint64_t& duplicates) {
  size_t total = 0;
  for (const auto& p : parts) total += p.store->size();
  keys.clear();
  keys.reserve(total);
  std::vector<std::pair<size_t, io::ImageLocation>> located;  // (part, location) per key
  located.reserve(total);
  std::unordered_map<std::string, size_t> first;  // key -> position in keys
  first.reserve(total);
  for (size_t pi = 0; pi < parts.size(); ++pi) {
    const Part& p = parts[pi];
    for (auto& key : p.store->keys()) {
      const io::ImageLocation loc = p.store->locate(key);
      auto [it, fresh] = first.emplace(key, keys.size());
      if (fresh) {
        keys.push_back(std::move(key));
        located.emplace_back(pi, loc);
        continue;
      }
      const auto& [qi, qloc] = located[it->second];
      const Part& q = parts[qi];
      if (qloc.size != loc.size || q.store->read(key) != p.store->read(key))
        throw Error(fmt::format("image bytes differ from those of the same key in {}", q.dir), p.index_path,
                    key_where(key), "the parts were prepared from different images or with different options");
      ++duplicates;
    }
  }
  std::vector<uint32_t> shard_base(parts.size(), 0);
  for (size_t pi = 1; pi < parts.size(); ++pi) shard_base[pi] = shard_base[pi - 1] + parts[pi - 1].shards;
  std::vector<IndexEntry> entries;
  entries.reserve(keys.size());
  for (size_t k = 0; k < keys.size(); ++k) {
    const auto& [pi, loc] = located[k];
    entries.push_back({&keys[k], shard_base[pi] + loc.shard, loc});
  }
  return entries;
}

// The index file in the format of io/image_store.h.
std::string index_text(const std::vector<IndexEntry>& entries, uint32_t shards) {
  std::string text = fmt::format("eve-image-index 1\nshards {}\nimages {}\n", shards, entries.size());
  for (const auto& e : entries) text += fmt::format("{}\t{}\t{}\t{}\n", *e.key, e.shard, e.loc.offset, e.loc.size);
  return text;
}

// The parts' manifests combined.
ordered_json merged_manifest(const std::vector<Part>& parts, const MergeReport& r, const std::string& fingerprint) {
  const Part& first = parts.front();
  ordered_json sources = ordered_json::array();
  std::set<std::string> seen_sources;
  std::map<std::string, ordered_json> splits;
  uint64_t records = 0, records_skipped = 0;
  ordered_json skipped = ordered_json::array();
  std::unordered_map<std::string, size_t> skipped_at;
  ordered_json merged_from = ordered_json::array();
  for (const auto& p : parts) {
    for (const auto& s : p.manifest["sources"])
      if (seen_sources.insert(s.dump()).second) sources.push_back(s);
    for (const auto& [name, info] : p.manifest["splits"].items()) {
      const uint64_t n = manifest_count(p, info, "records", "splits." + name);
      auto [it, fresh] = splits.emplace(name, info);
      if (!fresh) it->second["records"] = it->second["records"].get<uint64_t>() + n;
    }
    const auto& counts = p.manifest["counts"];
    records += counts["records"].get<uint64_t>();
    records_skipped += counts["records_skipped"].get<uint64_t>();
    const auto& list = p.manifest["skipped"];
    for (size_t i = 0; i < list.size(); ++i) {
      const auto& s = list[i];
      const std::string where = fmt::format("skipped[{}]", i);
      if (!s.is_object() || !s.contains("key") || !s["key"].is_string() || !s.contains("reason") ||
          !s["reason"].is_string())
        throw Error("expected an object with \"key\" and \"reason\"", p.manifest_path, where);
      auto [it, fresh] = skipped_at.emplace(s["key"].get<std::string>(), skipped.size());
      if (fresh) {
        skipped.push_back(s);
        continue;
      }
      // Skipped in several parts: one entry, the records that needed it from all of them.
      auto& kept = skipped[it->second];
      if (kept.contains("records") && kept["records"].is_array() && s.contains("records") && s["records"].is_array())
        for (const auto& rec : s["records"])
          if (kept["records"].size() < kMaxRecordsListed) kept["records"].push_back(rec);
      if (kept.contains("records_total") && kept["records_total"].is_number_unsigned() &&
          s.contains("records_total") && s["records_total"].is_number_unsigned())
        kept["records_total"] = kept["records_total"].get<uint64_t>() + s["records_total"].get<uint64_t>();
    }
    merged_from.push_back({{"path", p.dir},
                           {"shard", {{"index", p.shard_index}, {"count", p.shard_count}}},
                           {"images", p.store->size()},
                           {"records", counts["records"]}});
  }
  std::map<std::string, uint64_t> reasons;
  for (const auto& s : skipped) ++reasons[s["reason"].get<std::string>()];
  ordered_json by_reason = ordered_json::object();
  for (const auto& [reason, n] : reasons) by_reason[reason] = n;
  ordered_json split_json = ordered_json::object();
  for (const auto& [name, info] : splits) split_json[name] = info;
  const uint64_t considered = r.images + skipped.size();

  ordered_json m;
  m["tool"] = version_line("eve-prep");
  m["task"] = first.manifest["task"];
  m["sources"] = sources;
  m["image_policy"] = first.manifest["image_policy"];
  m["shard"] = {{"index", 0}, {"count", 1}};
  m["merged_from"] = merged_from;
  m["duplicate_images"] = r.duplicate_images;
  m["splits"] = split_json;
  m["counts"] = {{"images", r.images},
                 {"images_skipped", skipped.size()},
                 {"records", records},
                 {"records_skipped", records_skipped}};
  m["skipped_by_reason"] = by_reason;
  m["bad_fraction"] = considered == 0 ? 0.0 : static_cast<double>(skipped.size()) / static_cast<double>(considered);
  if (first.manifest.contains("max_bad")) m["max_bad"] = first.manifest["max_bad"];
  m["skipped"] = skipped;
  m["fingerprint"] = fingerprint;
  return m;
}

// True when `out` holds a complete merge with this fingerprint and the expected files.
bool is_previous_merge(const std::string& out, const std::string& fingerprint, const MergeReport& r,
                       const std::map<std::string, uint64_t>& record_bytes) {
  try {
    const std::string path = out + "/manifest.json";
    if (!io::file_exists(path)) return false;
    auto m = io::read_json(path);
    if (!m.is_object() || m.value("fingerprint", std::string()) != fingerprint) return false;
    io::ImageStore store(out, kPrefix);
    if (store.size() != r.images) return false;
    for (const auto& [name, bytes] : record_bytes) {
      std::error_code ec;
      if (fs::file_size(out + "/" + name, ec) != bytes || ec) return false;
    }
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// "<out>.tmp-<pid>" dirs left by merges that were killed: removed when their process is gone.
void remove_stale_temporaries(const std::string& out) {
  const fs::path target(out);
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  const std::string stem = target.filename().string() + ".tmp-";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const std::string name = e.path().filename().string();
    if (name.compare(0, stem.size(), stem) != 0 || name.size() == stem.size()) continue;
    const std::string digits = name.substr(stem.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(digits));
    if (::kill(pid, 0) != 0 && errno == ESRCH) io::try_remove_tree(e.path());
  }
}

class TemporaryDir {
 public:
  explicit TemporaryDir(std::string path) : path_(std::move(path)) {
    std::error_code ec;
    io::try_remove_tree(path_);
    fs::create_directories(path_, ec);
    if (ec) throw Error("cannot create: " + ec.message(), path_);
  }
  ~TemporaryDir() {
    if (path_.empty()) return;
    std::error_code ec;
    io::try_remove_tree(path_);
  }
  TemporaryDir(const TemporaryDir&) = delete;
  TemporaryDir& operator=(const TemporaryDir&) = delete;
  const std::string& path() const { return path_; }
  void rename_to(const std::string& target) {
    std::error_code ec;
    fs::rename(path_, target, ec);
    if (ec) throw Error("cannot rename the merged dir into place: " + ec.message(), target, {}, "did it appear meanwhile?");
    path_.clear();
  }

 private:
  std::string path_;
};

// Hard-links src to dst when allowed and on the same filesystem, else copies it (flushed to
// disk). True when linked.
bool link_or_copy(const std::string& src, const std::string& dst, bool hard_links) {
  std::error_code ec;
  const fs::path real = fs::canonical(src, ec);  // link the file, never a symbolic link
  if (ec) throw Error("cannot resolve: " + ec.message(), src);
  if (hard_links) {
    fs::create_hard_link(real, dst, ec);
    if (!ec) return true;
  }
  fs::copy_file(real, dst, ec);
  if (ec) throw Error("cannot copy to " + dst + ": " + ec.message(), src);
  const int fd = ::open(dst.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    throw Error("cannot flush the copy: " + why, dst);
  }
  ::close(fd);
  return false;
}

}  // namespace

MergeReport merge_datasets(const MergeOptions& options) {
  MergeOptions o = options;
  while (o.out.size() > 1 && o.out.back() == '/') o.out.pop_back();  // "dir/": the temporary goes beside it
  check_arguments(o);
  std::vector<Part> parts;
  parts.reserve(o.parts.size());
  for (const auto& dir : o.parts) parts.push_back(load_part(dir));
  for (const auto& p : parts) {
    check_same(p, parts.front(), "task");
    check_same(p, parts.front(), "image_policy");
  }
  MergeReport r;
  r.warnings = check_shard_runs(parts);
  check_record_files(parts);

  Fnv fp;
  fp.field(kFingerprintTag);
  for (const auto& p : parts) {
    fp.field(p.manifest_text);
    fp.field(p.index_text);
    for (uint32_t s = 0; s < p.shards; ++s) {
      std::error_code ec;
      fp.field(std::to_string(fs::file_size(io::image_shard_path(p.dir, kPrefix, s), ec)));
    }
  }
  scan_record_files(parts, fp);
  std::vector<std::string> keys;
  const std::vector<IndexEntry> entries = merge_index(parts, keys, r.duplicate_images);
  r.images = entries.size();
  for (const auto& p : parts) r.shards += p.shards;
  std::map<std::string, uint64_t> record_bytes;
  for (const auto& p : parts)
    for (const auto& [name, info] : p.records) {
      record_bytes[name] += info.bytes + (info.needs_newline ? 1 : 0);
      r.lines_by_file[name] += info.lines;
    }
  for (const auto& p : parts) r.records += p.manifest["counts"]["records"].get<uint64_t>();
  const std::string fingerprint = fmt::format("{} parts={} hash={:016x}", kFingerprintTag, parts.size(), fp.h);

  std::error_code ec;
  if (fs::exists(fs::symlink_status(o.out, ec))) {
    if (is_previous_merge(o.out, fingerprint, r, record_bytes)) {
      r.up_to_date = true;
      return r;
    }
    throw Error("already exists and is not a merge of these parts", o.out, {},
                "remove it or give another --out; a merge never overwrites");
  }

  remove_stale_temporaries(o.out);
  TemporaryDir tmp(o.out + ".tmp-" + std::to_string(::getpid()));
  uint32_t next_shard = 0;
  for (const auto& p : parts)
    for (uint32_t s = 0; s < p.shards; ++s) {
      signals::throw_if_stopped();
      const bool linked = link_or_copy(io::image_shard_path(p.dir, kPrefix, s),
                                       io::image_shard_path(tmp.path(), kPrefix, next_shard++), o.hard_links);
      ++(linked ? r.shards_linked : r.shards_copied);
    }
  io::write_file_atomic(io::image_index_path(tmp.path(), kPrefix), index_text(entries, next_shard));

  for (const auto& [name, bytes] : record_bytes) {
    io::AtomicWriter w(tmp.path() + "/" + name);
    for (const auto& p : parts) {
      signals::throw_if_stopped();
      auto file = p.records.find(name);
      if (file == p.records.end()) continue;  // a split this part has no records of
      for_each_chunk(p.dir + "/" + name, [&](std::string_view chunk) { w.write(chunk); });
      if (file->second.needs_newline) w.write("\n");
    }
    w.commit();
  }
  io::write_file_atomic(tmp.path() + "/manifest.json", io::dump_lenient(merged_manifest(parts, r, fingerprint), 2) + "\n");
  io::ImageStore written(tmp.path(), kPrefix);  // the merged index verifies against its shards
  tmp.rename_to(o.out);
  return r;
}

}  // namespace eve::data
