// The prep pipeline: images decoded/resized/encoded in parallel, added to the store in
// input order (so the output does not depend on the thread count), in resumable batches.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/progress.h"
#include "eve/core/signals.h"
#include "eve/core/threads.h"
#include "eve/core/version.h"
#include "eve/data/prep.h"
#include "eve/image/codec.h"
#include "eve/image/resize.h"
#include "eve/io/file.h"
#include "eve/io/image_store.h"
#include "eve/io/jsonl.h"

namespace eve::data {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kWorkDir = ".prep-work";
constexpr size_t kMaxRecordsListed = 10;

struct Outcome {
  bool ok = false;
  std::string jpeg;
  image::Failure reason = image::Failure::corrupt;
  std::string message;
};

std::string read_source(const ImageSource& src) {
  if (src.size < 0) return io::read_file(src.path);
  int fd = ::open(src.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw image::ImageError(image::Failure::missing, std::string("cannot open: ") + std::strerror(errno));
  std::string out(static_cast<size_t>(src.size), '\0');
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(src.offset + done));
    if (n <= 0) {
      ::close(fd);
      throw image::ImageError(image::Failure::truncated, "archive member ends early");
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return out;
}

Outcome process(const ImageSource& src, const PrepOptions& o) {
  Outcome r;
  try {
    std::string bytes;
    try {
      bytes = read_source(src);
    } catch (const image::ImageError&) {
      throw;
    } catch (const Error& e) {
      throw image::ImageError(image::Failure::missing, e.message());
    }
    image::DecodeOptions dopt;
    dopt.max_pixels = o.max_pixels;
    dopt.min_short_side = o.size;
    image::DecodeInfo info;
    image::Image img = image::decode(bytes, dopt, &info);
    int ow = info.original_width, oh = info.original_height;
    if (info.orientation >= 5) std::swap(ow, oh);
    int tw, th;
    image::shorter_side_size(ow, oh, o.size, tw, th);
    if (info.plain_jpeg && info.orientation == 1 && info.scale_denom == 1 && tw == img.width && th == img.height) {
      r.jpeg = std::move(bytes);  // already what we would store: keep the original bytes
    } else {
      if (tw != img.width || th != img.height) img = image::resize_bicubic(img, tw, th);
      image::EncodeOptions enc;
      enc.quality = o.quality;
      r.jpeg = image::encode_jpeg(img, enc);
    }
    r.ok = true;
  } catch (const image::ImageError& e) {
    r.reason = e.reason();
    r.message = e.message();
  } catch (const std::bad_alloc&) {
    r.reason = image::Failure::too_large;
    r.message = "out of memory while decoding";
  } catch (const Error& e) {
    // Decodable but not storable, e.g. a PNG wider than JPEG's 65535-pixel limit.
    r.reason = image::Failure::unsupported;
    r.message = e.message();
  }
  return r;
}

// What identifies a run's work batches: everything that changes the stored bytes.
std::string work_fingerprint(const std::vector<size_t>& images, const Collection& c, const PrepOptions& o) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const std::string& s) {
    for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
  };
  for (size_t i : images) {
    const auto& s = c.images[i];
    mix(s.key);
    mix(s.path);
    mix(fmt::format("{}+{}", s.offset, s.size));
  }
  return fmt::format("eve-prep work 1 size={} quality={} max_pixels={} batch={} images={} hash={:016x}", o.size,
                     o.quality, o.max_pixels, o.batch_images, images.size(), h);
}

// What identifies a finished dataset dir: the work fingerprint plus everything else that
// shapes the output (records, store shard size, the bad-input limit).
std::string output_fingerprint(const std::string& work_fp, const std::vector<const Example*>& examples,
                               const std::vector<const SkippedSample*>& samples_skipped, const PrepOptions& o) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const std::string& s) {
    for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
  };
  for (const Example* e : examples) {
    mix(e->split);
    std::string line = io::to_jsonl_line(e->record, e->where);
    line.pop_back();  // the hash of record.dump(), as before
    mix(line);
    mix(e->where);
  }
  for (const SkippedSample* s : samples_skipped) {
    mix(s->id);
    mix(s->reason);
    mix(s->message);
  }
  return fmt::format("{} records={} hash={:016x} shard_bytes={} max_bad={} part={}/{}", work_fp, examples.size(), h,
                     o.shard_bytes, o.max_bad, o.shard_index, o.shard_count);
}

// The report of a dataset dir that an identical earlier run finished, or false.
bool already_done(const std::string& out, const std::string& fingerprint, PrepReport& r) {
  const std::string path = out + "/manifest.json";
  if (!io::file_exists(path)) return false;
  try {
    json m = io::read_json(path);
    if (m.value("fingerprint", std::string()) != fingerprint) return false;
    io::ImageStore store(out);  // verifies the index against the shards
    r.images_stored = m["counts"]["images"].get<uint64_t>();
    r.images_skipped = m["counts"]["images_skipped"].get<uint64_t>();
    r.records_written = m["counts"]["records"].get<uint64_t>();
    r.records_skipped = m["counts"]["records_skipped"].get<uint64_t>();
    for (auto it = m["skipped_by_reason"].begin(); it != m["skipped_by_reason"].end(); ++it)
      r.skipped_by_reason[it.key()] = it.value().get<uint64_t>();
    r.bad_fraction = m["bad_fraction"].get<double>();
    if (store.size() != r.images_stored) return false;
    for (const auto& [split, info] : m["splits"].items())
      if (!io::file_exists(out + "/" + info["file"].get<std::string>())) return false;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::string batch_prefix(size_t b) { return fmt::format("batch-{:05d}", b); }

void remove_stale_shards(const std::string& dir, const std::string& prefix, uint32_t keep) {
  for (uint32_t s = keep;; ++s) {
    const std::string p = io::image_shard_path(dir, prefix, s);
    if (!io::file_exists(p)) break;
    std::remove(p.c_str());
  }
}

}  // namespace

void parse_shard(const std::string& arg, int& index, int& count) {
  const size_t slash = arg.find('/');
  try {
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    size_t a = 0, b = 0;
    index = std::stoi(arg.substr(0, slash), &a);
    count = std::stoi(arg.substr(slash + 1), &b);
    if (a != slash || b != arg.size() - slash - 1) throw std::invalid_argument("junk");
  } catch (const std::exception&) {
    throw UsageError("--shard expects I/N (e.g. 0/4), got '" + arg + "'");
  }
  if (count < 1 || index < 0 || index >= count)
    throw UsageError("--shard " + arg + ": need 0 <= I < N");
}

PrepReport run_prep(Collection& c, const PrepOptions& o) {
  if (o.out.empty()) throw UsageError("missing --out DIR");
  if (o.size < 0) throw UsageError("--size must be >= 0");
  if (o.quality < 1 || o.quality > 100) throw UsageError("--quality must be in 1..100");
  if (!(o.max_bad >= 0 && o.max_bad <= 1)) throw UsageError("--max-bad is a fraction in 0..1");
  if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count) throw UsageError("bad --shard");

  // This part's examples: those whose first image has ordinal = shard_index (mod N).
  std::vector<const Example*> examples;
  std::vector<size_t> images;  // distinct, in first-use order within this part
  std::vector<int64_t> slot(c.images.size(), -1);
  for (const auto& e : c.examples) {
    if (e.images.empty() || static_cast<int>(e.images[0] % static_cast<size_t>(o.shard_count)) != o.shard_index) continue;
    examples.push_back(&e);
    for (size_t i : e.images)
      if (slot[i] < 0) {
        slot[i] = static_cast<int64_t>(images.size());
        images.push_back(i);
      }
  }
  // Samples the readers left out, dealt round the parts so that each is reported once.
  std::vector<const SkippedSample*> samples_skipped;
  for (size_t j = 0; j < c.skipped_samples.size(); ++j)
    if (static_cast<int>(j % static_cast<size_t>(o.shard_count)) == o.shard_index)
      samples_skipped.push_back(&c.skipped_samples[j]);

  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec) throw Error("cannot create the output directory: " + ec.message(), o.out);
  const std::string work = o.out + "/" + kWorkDir;
  const std::string fingerprint = work_fingerprint(images, c, o);
  const std::string out_fingerprint = output_fingerprint(fingerprint, examples, samples_skipped, o);
  PrepReport report;
  if (already_done(o.out, out_fingerprint, report)) {
    std::error_code ignored;
    io::try_remove_tree(o.out + "/" + kWorkDir);  // left if the last run stopped right at the end
    log::info("prep: {} is already complete for these inputs and options; nothing to do", o.out);
    if (report.bad_fraction > o.max_bad)
      throw TooManyBadInputs(fmt::format("{} images were bad ({:.4f} > --max-bad {})", report.images_skipped,
                                         report.bad_fraction, o.max_bad),
                             o.out + "/manifest.json");
    return report;
  }
  const std::string fp_path = work + "/fingerprint";
  if (io::file_exists(fp_path) && io::read_file(fp_path) != fingerprint) {
    log::info("prep: the inputs or options changed since the interrupted run; starting over");
    io::try_remove_tree(work);
  }
  fs::create_directories(work, ec);
  if (ec) throw Error("cannot create the work directory: " + ec.message(), work);
  if (!io::file_exists(fp_path)) io::write_file_atomic(fp_path, fingerprint);

  // Work batches: each a small image store plus a list of failures; a batch whose index
  // verifies is reused as it is.
  std::vector<Outcome> failures(images.size());
  std::vector<bool> failed(images.size(), false);
  ThreadPool pool(o.threads);
  const size_t per_batch = static_cast<size_t>(std::max(1, o.batch_images));
  const size_t batches = (images.size() + per_batch - 1) / per_batch;
  Progress progress("prep", images.size(), "img");
  for (size_t b = 0; b < batches; ++b) {
    const size_t first = b * per_batch, last = std::min(images.size(), first + per_batch);
    const std::string prefix = batch_prefix(b);
    const std::string fail_path = work + "/" + prefix + ".failed.json";
    if (io::file_exists(io::image_index_path(work, prefix)) && io::file_exists(fail_path)) {
      try {
        io::ImageStore done(work, prefix);
        json fails = io::read_json(fail_path);
        for (const auto& f : fails) {
          const size_t k = f["slot"].get<size_t>();
          failed[k] = true;
          failures[k].reason = static_cast<image::Failure>(f["reason"].get<int>());
          failures[k].message = f["message"].get<std::string>();
        }
        report.images_reused += done.size();
        progress.add(last - first);
        continue;
      } catch (const Error& e) {
        log::warn("prep: redoing batch {} ({})", b, e.what());
      }
    }
    signals::throw_if_stopped();
    std::vector<Outcome> out(last - first);
    parallel_for(pool, out.size(), [&](size_t i) { out[i] = process(c.images[images[first + i]], o); });
    io::ImageStoreWriter writer(work, uint64_t{1} << 40, prefix);
    json fails = json::array();
    for (size_t i = 0; i < out.size(); ++i) {
      if (out[i].ok) {
        writer.add(c.images[images[first + i]].key, out[i].jpeg);
      } else {
        failed[first + i] = true;
        failures[first + i] = out[i];
        fails.push_back({{"slot", first + i}, {"reason", static_cast<int>(out[i].reason)}, {"message", out[i].message}});
      }
    }
    io::write_file_atomic(fail_path, io::dump_lenient(fails) + "\n");
    writer.finish();  // the index last: its presence marks the batch complete
    progress.add(out.size());
    if (o.on_batch_done) o.on_batch_done(b, batches);
  }
  progress.finish();

  // The final store, from the batches in order.
  io::ImageStoreWriter store(o.out, o.shard_bytes, "images");
  for (size_t b = 0; b < batches; ++b) {
    io::ImageStore batch(work, batch_prefix(b));
    const size_t first = b * per_batch, last = std::min(images.size(), first + per_batch);
    for (size_t k = first; k < last; ++k) {
      if (failed[k]) continue;
      const std::string& key = c.images[images[k]].key;
      store.add(key, batch.read(key));
      ++report.images_stored;
    }
  }
  store.finish();
  {
    std::set<uint32_t> used;
    io::ImageStore final_store(o.out);
    for (const auto& k : final_store.keys()) used.insert(final_store.locate(k).shard);
    remove_stale_shards(o.out, "images", used.empty() ? 0 : *used.rbegin() + 1);
  }

  // Records, one file per split, in input order; a record whose image failed is skipped.
  std::map<std::string, std::string> split_text;
  std::map<std::string, uint64_t> split_count;
  std::vector<std::vector<std::string>> needed_by(images.size());
  std::vector<uint64_t> needed_count(images.size(), 0);
  // Every split of the inputs gets a file in every part, even when none of its records fell
  // into this part, so the parts of a --shard run all have the same files.
  for (const auto& e : c.examples) split_text[e.split];
  for (const Example* e : examples) {
    bool usable = true;
    for (size_t i : e->images) {
      const size_t k = static_cast<size_t>(slot[i]);
      if (failed[k]) {
        usable = false;
        if (needed_by[k].size() < kMaxRecordsListed) needed_by[k].push_back(e->where);
        ++needed_count[k];
      }
    }
    if (!usable) {
      ++report.records_skipped;
      continue;
    }
    split_text[e->split] += io::to_jsonl_line(e->record, e->where);
    ++split_count[e->split];
    ++report.records_written;
  }
  for (const auto& [split, text] : split_text) io::write_file_atomic(o.out + "/" + split + ".jsonl", text);

  ordered_json skipped = ordered_json::array();
  for (size_t k = 0; k < images.size(); ++k) {
    if (!failed[k]) continue;
    const auto& src = c.images[images[k]];
    const std::string reason = image::failure_name(failures[k].reason);
    ++report.skipped_by_reason[reason];
    ++report.images_skipped;
    skipped.push_back({{"image", src.name},
                       {"key", src.key},
                       {"reason", reason},
                       {"message", failures[k].message},
                       {"records", needed_by[k]},
                       {"records_total", needed_count[k]}});
  }
  for (const SkippedSample* s : samples_skipped) {
    ++report.skipped_by_reason[s->reason];
    ++report.images_skipped;
    ++report.records_skipped;
    skipped.push_back({{"image", s->name},
                       {"key", s->id},
                       {"reason", s->reason},
                       {"message", s->message},
                       {"records", {s->where}},
                       {"records_total", 1}});
  }
  // A skipped sample is an input whose image was never considered: it counts as one more.
  const size_t considered = images.size() + samples_skipped.size();
  report.bad_fraction = considered == 0 ? 0.0 : static_cast<double>(report.images_skipped) / considered;

  ordered_json m;
  m["tool"] = version_line("eve-prep");
  m["task"] = c.task;
  m["sources"] = c.sources;
  m["image_policy"] = {{"short_side", o.size},
                       {"resize", o.size > 0 ? "shorter side to short_side, Pillow-equivalent bicubic, never upscaled"
                                             : "originals kept"},
                       {"jpeg_quality", o.quality},
                       {"max_pixels", o.max_pixels},
                       {"exif_orientation", "applied"}};
  m["shard"] = {{"index", o.shard_index}, {"count", o.shard_count}};
  ordered_json splits = ordered_json::object();
  for (const auto& [split, text] : split_text) splits[split] = {{"file", split + ".jsonl"}, {"records", split_count[split]}};
  m["splits"] = splits;
  m["counts"] = {{"images", report.images_stored},
                 {"images_skipped", report.images_skipped},
                 {"records", report.records_written},
                 {"records_skipped", report.records_skipped}};
  ordered_json by_reason = ordered_json::object();
  for (const auto& [r, n] : report.skipped_by_reason) by_reason[r] = n;
  m["skipped_by_reason"] = by_reason;
  m["bad_fraction"] = report.bad_fraction;
  m["max_bad"] = o.max_bad;
  m["skipped"] = skipped;
  m["fingerprint"] = out_fingerprint;
  io::write_file_atomic(o.out + "/manifest.json", io::dump_lenient(m, 2) + "\n");
  io::try_remove_tree(work);

  if (report.images_skipped > 0) {
    std::string summary;
    for (const auto& [r, n] : report.skipped_by_reason) summary += fmt::format("{}{} {}", summary.empty() ? "" : ", ", n, r);
    log::warn("prep: skipped {} of {} images ({}) and {} records; see {}/manifest.json", report.images_skipped,
              considered, summary, report.records_skipped, o.out);
  }
  if (report.bad_fraction > o.max_bad)
    throw TooManyBadInputs(fmt::format("{} of {} images were bad ({:.4f} > --max-bad {})", report.images_skipped,
                                       considered, report.bad_fraction, o.max_bad),
                           o.out + "/manifest.json");
  return report;
}

}  // namespace eve::data
