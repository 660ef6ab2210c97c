// Files where "-" means stdin/stdout, line reading with line numbers and limits, and the
// atomic writer (temp file in the same directory, fsync, rename) every output goes through.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace eve::io {

// Reads a whole file ("-" = stdin). Errors name the path.
std::string read_file(const std::string& path);
bool file_exists(const std::string& path);
// Removes a file or a directory tree (symbolic links are removed, never followed); a path
// that does not exist is no error. Written on POSIX calls rather than
// std::filesystem::remove_all: pip builds of libtorch >= 2.5 export their own copy of
// libstdc++'s std::filesystem, and a program linked with them calls that copy, which crashes
// in remove_all. remove_tree throws eve::Error naming the entry it could not remove;
// try_remove_tree returns false instead.
void remove_tree(const std::string& path);
bool try_remove_tree(const std::string& path) noexcept;
// True when s is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool is_valid_utf8(std::string_view s);
// Byte offset of the first ill-formed sequence in s, or npos when s is valid UTF-8.
size_t utf8_error_offset(std::string_view s);

// Reads lines (without the trailing "\n" or "\r\n") from a file or "-" (standard input,
// read from descriptor 0 directly). A last line without "\n" is returned too.
class LineReader {
 public:
  static constexpr size_t kDefaultMaxLine = size_t{256} << 20;  // 256 MiB

  explicit LineReader(const std::string& path, size_t max_line = kDefaultMaxLine);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // False at end of input. Throws eve::Error naming file:line for an over-long line or a
  // read error.
  bool next(std::string& line);
  // 1-based number of the line last returned by next().
  uint64_t line_number() const { return line_no_; }
  const std::string& path() const { return path_; }
  // "file:line" for messages.
  std::string where() const;

 private:
  bool refill();
  static constexpr size_t kChunk = size_t{1} << 16;
  std::string path_;
  FILE* f_ = nullptr;
  bool owned_ = false;
  size_t max_line_;
  uint64_t line_no_ = 0;
  std::string buf_;  // bytes read but not yet returned: buf_[begin_, end_)
  size_t begin_ = 0, end_ = 0;
  bool eof_ = false;
};

// Makes an output path ready before the work that fills it: "-" passes; an existing
// directory is an error naming it; missing parent directories are created (errors name the
// one that could not be). Every program calls it on its outputs first; AtomicWriter too.
void prepare_output(const std::string& path);

// Writes to "<path>.tmp.<pid>.<n>" in the final directory and renames it over `path` on
// commit(); destroyed without commit() (an exception, a signal), it removes the temp file,
// so a reader never sees a partial file under the final name. "-" writes to stdout.
class AtomicWriter {
 public:
  explicit AtomicWriter(std::string path);
  ~AtomicWriter();
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;

  void write(std::string_view data);
  void write(const void* data, size_t size);
  // Overwrites `size` bytes at `offset` inside what was already written (a header whose
  // counts are known only at the end). Not possible on stdout: throws.
  void write_at(uint64_t offset, const void* data, size_t size);
  // Bytes written so far.
  uint64_t size() const { return written_; }
  // Flushes, fsyncs and renames into place. Throws on any I/O failure.
  void commit();
  const std::string& path() const { return path_; }
  bool is_stdout() const { return f_ == stdout; }

 private:
  std::string path_, tmp_;
  FILE* f_ = nullptr;
  bool committed_ = false;
  uint64_t written_ = 0;
};

// Writes `data` to `path` atomically in one call.
void write_file_atomic(const std::string& path, std::string_view data);

}  // namespace eve::io
