#include "eve/io/image_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "eve/core/error.h"

namespace eve::io {
namespace {

constexpr char kMagicLine[] = "eve-image-index 1";
constexpr size_t kMaxKey = 200;
constexpr char kExt[] = ".jpg";

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + uint64_t(c - '0');
  }
  out = v;
  return true;
}

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t t = line.find('\t', start);
    parts.push_back(line.substr(start, t == std::string_view::npos ? t : t - start));
    if (t == std::string_view::npos) return parts;
    start = t + 1;
  }
}

std::string key_where(const std::string& key) { return "key '" + key + "'"; }

}  // namespace

std::string image_key_problem(std::string_view key) {
  if (key.empty()) return "empty key";
  if (key.size() > kMaxKey) return "key longer than " + std::to_string(kMaxKey) + " bytes";
  if (key.find('/') != std::string_view::npos) return "'/' in key";
  for (unsigned char c : key)
    if (c < 0x20 || c == 0x7f) return "control character in key";
  if (!is_valid_utf8(key)) return "key is not valid UTF-8";
  return {};
}

std::string image_shard_path(const std::string& dir, const std::string& prefix, uint32_t shard) {
  char num[16];
  std::snprintf(num, sizeof num, "%05u", shard);
  return dir + "/" + prefix + "-" + num + ".tar";
}

std::string image_index_path(const std::string& dir, const std::string& prefix) {
  return dir + "/" + prefix + ".idx";
}

// ---- writer -----------------------------------------------------------------------

ImageStoreWriter::ImageStoreWriter(std::string dir, uint64_t shard_bytes, std::string prefix)
    : dir_(std::move(dir)), prefix_(std::move(prefix)), shard_bytes_(shard_bytes) {
  struct stat st {};
  if (::stat(dir_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw Error("not a directory", dir_, {}, "create the output directory first");
  if (prefix_.empty() || !image_key_problem(prefix_).empty())
    throw Error("bad image store prefix '" + prefix_ + "'", dir_);
}

ImageStoreWriter::~ImageStoreWriter() = default;

void ImageStoreWriter::add(const std::string& key, std::string_view jpeg_bytes) {
  if (finished_) throw Error("image store already finished", image_index_path(dir_, prefix_));
  std::string problem = image_key_problem(key);
  if (!problem.empty()) throw Error("bad image key: " + problem, dir_, key_where(key));
  if (contains(key))
    throw Error("duplicate image key", dir_, key_where(key), "each image is stored once");
  std::string member = key + kExt;
  if (shard_) {
    uint64_t after = shard_->size() + TarWriter::member_bytes(member, jpeg_bytes.size());
    if (after + TarWriter::finish_bytes(after) > shard_bytes_) {
      shard_->finish();
      shard_.reset();
    }
  }
  if (!shard_) shard_ = std::make_unique<TarWriter>(image_shard_path(dir_, prefix_, shards_++));
  uint64_t offset = shard_->add(member, jpeg_bytes);
  index_.emplace(key, entries_.size());
  entries_.push_back({key, ImageLocation{shards_ - 1, offset, jpeg_bytes.size()}});
}

void ImageStoreWriter::finish() {
  if (finished_) return;
  if (shard_) {
    shard_->finish();
    shard_.reset();
  }
  std::string text = std::string(kMagicLine) + "\nshards " + std::to_string(shards_) +
                     "\nimages " + std::to_string(entries_.size()) + "\n";
  for (const auto& [key, loc] : entries_)
    text += key + "\t" + std::to_string(loc.shard) + "\t" + std::to_string(loc.offset) + "\t" +
            std::to_string(loc.size) + "\n";
  write_file_atomic(image_index_path(dir_, prefix_), text);
  finished_ = true;
}

// ---- reader -----------------------------------------------------------------------

struct ImageStore::Impl {
  std::string dir, prefix, index_path;
  std::vector<std::pair<std::string, ImageLocation>> entries;
  std::unordered_map<std::string, size_t> by_key;
  std::vector<std::string> shard_paths;
  mutable std::mutex mu;
  mutable std::vector<int> fds;  // opened on first use

  ~Impl() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }

  const ImageLocation& find(const std::string& key) const {
    auto it = by_key.find(key);
    if (it == by_key.end())
      throw Error("no such image in the store", index_path, key_where(key));
    return entries[it->second].second;
  }

  int fd(uint32_t shard) const {
    std::lock_guard<std::mutex> lock(mu);
    if (fds[shard] < 0) {
      int fd = ::open(shard_paths[shard].c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0)
        throw Error(std::string("cannot open: ") + std::strerror(errno), shard_paths[shard]);
      fds[shard] = fd;
    }
    return fds[shard];
  }
};

ImageStore::ImageStore(const std::string& dir, std::string prefix) : impl_(new Impl) {
  Impl& m = *impl_;
  m.dir = dir;
  m.prefix = std::move(prefix);
  m.index_path = image_index_path(dir, m.prefix);
  if (!file_exists(m.index_path))
    throw Error("image index not found", m.index_path, {},
                "is this a dataset dir written by eve-prep (and did it finish)?");
  std::string text = read_file(m.index_path);
  size_t line_no = 0, pos = 0;
  auto next_line = [&](std::string_view& line) {
    if (pos >= text.size()) return false;
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos)
      throw Error("last line has no newline (truncated index)", m.index_path,
                  std::to_string(line_no + 1));
    line = std::string_view(text).substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    return true;
  };
  auto fail = [&](const std::string& what) -> void {
    throw Error(what, m.index_path, std::to_string(line_no));
  };
  std::string_view line;
  if (!next_line(line) || line != kMagicLine) {
    line_no = 1;
    fail(std::string("not an image index (expected first line \"") + kMagicLine + "\")");
  }
  uint64_t nshards = 0, nimages = 0;
  if (!next_line(line) || line.substr(0, 7) != "shards " || !parse_u64(line.substr(7), nshards) ||
      nshards > 10'000'000)
    fail("expected \"shards <count>\"");
  if (!next_line(line) || line.substr(0, 7) != "images " || !parse_u64(line.substr(7), nimages))
    fail("expected \"images <count>\"");
  m.shard_paths.resize(size_t(nshards));
  std::vector<uint64_t> shard_size(static_cast<size_t>(nshards));
  for (uint32_t s = 0; s < nshards; ++s) {
    m.shard_paths[s] = image_shard_path(dir, m.prefix, s);
    struct stat st {};
    if (::stat(m.shard_paths[s].c_str(), &st) != 0 || !S_ISREG(st.st_mode))
      throw Error("shard named by the index is missing", m.shard_paths[s], {},
                  "the dataset dir is incomplete");
    shard_size[s] = uint64_t(st.st_size);
  }
  while (next_line(line)) {
    auto f = split_tabs(line);
    if (f.size() != 4) fail("expected key<TAB>shard<TAB>offset<TAB>size");
    std::string key(f[0]);
    std::string problem = image_key_problem(key);
    if (!problem.empty()) fail("bad image key: " + problem);
    uint64_t shard, offset, size;
    if (!parse_u64(f[1], shard) || !parse_u64(f[2], offset) || !parse_u64(f[3], size))
      fail("shard, offset and size must be non-negative integers");
    if (shard >= nshards)
      fail("shard " + std::to_string(shard) + " out of range (the index has " +
           std::to_string(nshards) + ")");
    if (offset > shard_size[shard] || size > shard_size[shard] - offset)
      fail("bytes " + std::to_string(offset) + "+" + std::to_string(size) + " lie outside " +
           m.shard_paths[shard] + " (" + std::to_string(shard_size[shard]) + " bytes)");
    if (!m.by_key.emplace(key, m.entries.size()).second) fail("duplicate key '" + key + "'");
    m.entries.push_back({key, ImageLocation{uint32_t(shard), offset, size}});
  }
  if (m.entries.size() != nimages)
    throw Error("index lists " + std::to_string(m.entries.size()) + " images but its header says " +
                    std::to_string(nimages),
                m.index_path, {}, "the index is truncated or was edited");
  m.fds.assign(m.shard_paths.size(), -1);
}

ImageStore::~ImageStore() = default;
ImageStore::ImageStore(ImageStore&&) noexcept = default;
ImageStore& ImageStore::operator=(ImageStore&&) noexcept = default;

size_t ImageStore::size() const { return impl_->entries.size(); }

bool ImageStore::contains(const std::string& key) const { return impl_->by_key.count(key) != 0; }

std::vector<std::string> ImageStore::keys() const {
  std::vector<std::string> out;
  out.reserve(impl_->entries.size());
  for (const auto& e : impl_->entries) out.push_back(e.first);
  return out;
}

ImageLocation ImageStore::locate(const std::string& key) const { return impl_->find(key); }

std::string ImageStore::read(const std::string& key) const {
  const ImageLocation& loc = impl_->find(key);
  int fd = impl_->fd(loc.shard);
  std::string out(size_t(loc.size), '\0');
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd, out.data() + done, out.size() - done, off_t(loc.offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      throw Error(std::string("read error: ") + std::strerror(errno),
                  impl_->shard_paths[loc.shard], key_where(key));
    if (n == 0)
      throw Error("shard is shorter than the index says", impl_->shard_paths[loc.shard],
                  key_where(key), "the dataset dir was modified after it was written");
    done += size_t(n);
  }
  return out;
}

}  // namespace eve::io
