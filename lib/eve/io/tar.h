// POSIX tar archives (the shards of a dataset dir and of webdataset), read and written as
// streams.
//
// The writer makes deterministic ustar archives: regular files only, mode 0644, uid/gid 0,
// uname/gname "root", mtime 0; a name longer than the ustar fields allow goes into a pax
// extended header ("path="), as does a size of 8 GiB or more ("size="); the archive ends
// with two zero blocks and is padded to a multiple of 10240 bytes, as GNU tar and Python's
// tarfile do.
//
// The reader takes ustar, pax ('x' extended headers with path and size, 'g' global headers
// ignored), GNU (././@LongLink 'L' long names, base-256 sizes) and old v7 headers. It
// verifies every header checksum, rejects member names that are absolute, contain a ".."
// component, control characters or invalid UTF-8 (invalid UTF-8 alone may be let through:
// TarReadOptions::allow_non_utf8_names), never follows links, and treats an
// archive that ends early (inside a header block, inside member data, or without the
// end-of-archive zero block) as an error naming the archive and the member.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "eve/io/file.h"

namespace eve::io {

// Why `name` cannot be a member name (empty when it can): empty, absolute, a ".."
// component, a control character, invalid UTF-8.
std::string tar_name_problem(std::string_view name);
// A member name for messages: control bytes and bytes of ill-formed UTF-8 as \xNN, so the
// result is valid UTF-8 whatever the name.
std::string shown_name(std::string_view name);

class TarWriter {
 public:
  explicit TarWriter(std::string path);  // atomic; "-" = stdout
  // Appends a regular file; returns the byte offset of its data in the archive. Throws for
  // a name tar_name_problem() rejects.
  uint64_t add(const std::string& name, std::string_view data);
  // Bytes written so far (before finish(): without the end-of-archive blocks).
  uint64_t size() const { return out_.size(); }
  // Writes the end-of-archive blocks and the record padding, then commits. Without it the
  // destructor leaves nothing under the final name.
  void finish();
  const std::string& path() const { return out_.path(); }

  // Archive bytes that add(name, data of `size` bytes) appends (headers + padded data).
  static uint64_t member_bytes(const std::string& name, uint64_t size);
  // Archive bytes finish() appends to an archive of `size` bytes.
  static uint64_t finish_bytes(uint64_t size);

 private:
  AtomicWriter out_;
};

struct TarMember {
  std::string name;     // "./" prefixes removed
  uint64_t size = 0;    // data bytes
  uint64_t offset = 0;  // byte offset of the data in the archive
  bool name_not_utf8 = false;  // only with TarReadOptions::allow_non_utf8_names
};

struct TarReadOptions {
  // Symbolic/hard links and device/FIFO members are errors by default; with this set they
  // are skipped (and counted) instead. Either way nothing is ever followed or created.
  bool skip_special = false;
  // Upper bound for a pax or GNU long-name header's data.
  uint64_t max_meta_bytes = uint64_t{1} << 20;
  // A member whose name is not valid UTF-8 but has no other problem is returned with
  // TarMember::name_not_utf8 set (for the caller to skip and report) instead of being an
  // error. Names that are unsafe in any other way are errors either way.
  bool allow_non_utf8_names = false;
};

class TarReader {
 public:
  explicit TarReader(const std::string& path, TarReadOptions options = {});  // "-" = stdin
  ~TarReader();
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  // Advances to the next regular file (directories are skipped, the data of the previous
  // member too when it was not read). False at the end-of-archive marker.
  bool next(TarMember& member);
  // The current member's data; at most once per member.
  std::string read();
  // Members skipped because of TarReadOptions::skip_special.
  uint64_t skipped() const { return skipped_; }
  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void fail(const std::string& what, const std::string& member,
                         const std::string& hint = {}) const;
  size_t read_some(char* dst, size_t n);
  void read_exact(char* dst, size_t n, const std::string& member, const char* inside);
  void skip(uint64_t n, const std::string& member, const char* inside);
  std::string read_meta(uint64_t size, const std::string& what);
  void finish_current();

  std::string path_, display_;
  TarReadOptions opt_;
  FILE* f_ = nullptr;
  bool owned_ = false;
  bool seekable_ = false;
  uint64_t pos_ = 0;
  uint64_t file_size_ = 0;  // when seekable
  std::string last_;        // name of the last member seen, for messages
  uint64_t remaining_ = 0;  // unread data bytes of the current member
  uint64_t padding_ = 0;    // padding after the current member's data
  bool in_member_ = false;
  bool done_ = false;
  uint64_t skipped_ = 0;
};

}  // namespace eve::io
