#include "eve/io/file.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "eve/core/error.h"

namespace eve::io {
namespace {

std::string errno_text() { return std::strerror(errno); }

std::string display(const std::string& path) { return path == "-" ? "<stdin>" : path; }

}  // namespace

std::string read_file(const std::string& path) {
  FILE* f = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
  if (!f) throw Error("cannot open: " + errno_text(), path);
  std::string out;
  // Regular files are read in one go into a buffer of their size; pipes in growing steps.
  struct stat st {};
  size_t chunk = size_t{1} << 20;
  if (::fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
    chunk = static_cast<size_t>(st.st_size) + 1;
  size_t used = 0;
  for (;;) {
    out.resize(used + chunk);
    size_t n = std::fread(&out[used], 1, chunk, f);
    used += n;
    if (n < chunk) break;
    chunk = std::max(chunk, used);  // geometric growth for streams
  }
  out.resize(used);
  bool bad = std::ferror(f) != 0;
  if (f != stdin) std::fclose(f);
  if (bad) throw Error("read error: " + errno_text(), display(path));
  return out;
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

namespace {

// The entry nftw's callback could not remove (a plain buffer: nothing may throw through nftw).
thread_local char t_remove_failed[4096];

int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  if (::remove(path) == 0 || errno == ENOENT) return 0;
  std::snprintf(t_remove_failed, sizeof t_remove_failed, "%s", path);
  return -1;
}

// 0 on success, else the errno of the first failure (t_remove_failed names the entry).
int remove_tree_impl(const std::string& path) noexcept {
  std::snprintf(t_remove_failed, sizeof t_remove_failed, "%s", path.c_str());
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return errno == ENOENT ? 0 : errno;
  if (!S_ISDIR(st.st_mode)) return ::unlink(path.c_str()) == 0 || errno == ENOENT ? 0 : errno;
  // Depth first (children before their directory), without following links.
  if (::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) return errno ? errno : EIO;
  return 0;
}

}  // namespace

void remove_tree(const std::string& path) {
  if (const int e = remove_tree_impl(path))
    throw Error(std::string("cannot remove: ") + std::strerror(e), t_remove_failed);
}

bool try_remove_tree(const std::string& path) noexcept { return remove_tree_impl(path) == 0; }

size_t utf8_error_offset(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += len;
  }
  return std::string_view::npos;
}

bool is_valid_utf8(std::string_view s) { return utf8_error_offset(s) == std::string_view::npos; }

LineReader::LineReader(const std::string& path, size_t max_line)
    : path_(path), max_line_(max_line) {
  if (path == "-") {
    f_ = stdin;
  } else {
    f_ = std::fopen(path.c_str(), "rb");
    if (!f_) throw Error("cannot open: " + errno_text(), path);
    owned_ = true;
  }
}

LineReader::~LineReader() {
  if (owned_ && f_) std::fclose(f_);
}

std::string LineReader::where() const { return display(path_) + ":" + std::to_string(line_no_); }

bool LineReader::refill() {
  if (eof_) return false;
  if (buf_.empty()) buf_.resize(kChunk);
  // read(2) rather than stdio: it returns what a pipe has now, so a line is handed on as
  // soon as it arrives instead of when a whole buffer has filled.
  for (;;) {
    ssize_t n = ::read(fileno(f_), buf_.data(), buf_.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error("read error: " + errno_text(), display(path_));
    begin_ = 0;
    end_ = static_cast<size_t>(n);
    if (n == 0) eof_ = true;
    return n > 0;
  }
}

bool LineReader::next(std::string& line) {
  line.clear();
  bool any = false;
  for (;;) {
    if (begin_ == end_ && !refill()) break;
    any = true;
    const char* p = buf_.data() + begin_;
    size_t avail = end_ - begin_;
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', avail));
    size_t take = nl ? static_cast<size_t>(nl - p) : avail;
    if (std::memchr(p, '\0', take)) {
      ++line_no_;
      throw Error("NUL byte inside a text line", display(path_), std::to_string(line_no_));
    }
    // The limit counts the line's content: a "\r" of "\r\n" is dropped below.
    size_t cr = nl && take > 0 && p[take - 1] == '\r' ? 1 : 0;
    if (line.size() + take - cr > max_line_) {
      ++line_no_;
      throw Error("line longer than " + std::to_string(max_line_) + " bytes", display(path_),
                  std::to_string(line_no_), "is this a text (JSON Lines) file?");
    }
    line.append(p, take);
    begin_ += take + (nl ? 1 : 0);
    if (nl) break;
  }
  if (!any) return false;
  ++line_no_;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return true;
}

void prepare_output(const std::string& path) {
  if (path.empty() || path == "-") return;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw Error("is a directory", path, {}, "name a file to write, for example " + path + "/out");
  // mkdir -p of the parent, one component at a time (POSIX calls, see remove_tree).
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos || slash == 0) return;
  const std::string parent = path.substr(0, slash);
  for (size_t at = 0; at != std::string::npos;) {
    at = parent.find('/', at + 1);
    const std::string dir = parent.substr(0, at);
    if (::mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST)
      throw Error("cannot create the directory: " + errno_text(), dir);
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      throw Error("is not a directory", dir, {}, "the output " + path + " needs it to be one");
  }
}

AtomicWriter::AtomicWriter(std::string path) : path_(std::move(path)) {
  if (path_ == "-") {
    f_ = stdout;
    return;
  }
  prepare_output(path_);
  static std::atomic<unsigned> counter{0};
  tmp_ = path_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_)
    throw Error("cannot create: " + errno_text(), path_, {},
                "does the directory exist and is it writable?");
}

AtomicWriter::~AtomicWriter() {
  if (f_ && f_ != stdout) {
    std::fclose(f_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
}

void AtomicWriter::write(const void* data, size_t size) {
  if (committed_) throw Error("write after commit", path_);
  if (size && std::fwrite(data, 1, size, f_) != size)
    throw Error("write failed: " + errno_text(), is_stdout() ? "<stdout>" : path_);
  written_ += size;
}

void AtomicWriter::write_at(uint64_t offset, const void* data, size_t size) {
  if (committed_) throw Error("write after commit", path_);
  if (is_stdout())
    throw Error("cannot rewrite output already sent to stdout", "<stdout>", {},
                "write to a file instead of '-'");
  if (offset > written_ || size > written_ - offset)
    throw Error("rewrite past the end of the data written so far", path_);
  if (std::fflush(f_) != 0) throw Error("write failed: " + errno_text(), path_);
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::pwrite(fileno(f_), p, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error("write failed: " + errno_text(), path_);
    }
    p += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<size_t>(n);
  }
}

void AtomicWriter::write(std::string_view data) { write(data.data(), data.size()); }

void AtomicWriter::commit() {
  if (committed_) return;
  if (f_ == stdout) {
    if (std::fflush(stdout) != 0) throw Error("write failed: " + errno_text(), "<stdout>");
    committed_ = true;
    return;
  }
  if (std::fflush(f_) != 0 || ::fsync(fileno(f_)) != 0)
    throw Error("write failed: " + errno_text(), path_);
  if (std::fclose(f_) != 0) {
    f_ = nullptr;
    ::unlink(tmp_.c_str());
    throw Error("write failed: " + errno_text(), path_);
  }
  f_ = nullptr;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::string err = errno_text();
    ::unlink(tmp_.c_str());
    throw Error("cannot rename into place: " + err, path_);
  }
  committed_ = true;
}

void write_file_atomic(const std::string& path, std::string_view data) {
  AtomicWriter w(path);
  w.write(data);
  w.commit();
}

}  // namespace eve::io
