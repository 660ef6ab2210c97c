#include "eve/io/tar.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "eve/core/error.h"

namespace eve::io {
namespace {

constexpr size_t kBlock = 512;
constexpr uint64_t kRecord = 10240;
constexpr uint64_t kMaxOctalSize = uint64_t{1} << 33;  // 11 octal digits hold < 8 GiB

// ustar header field offsets and widths.
struct Field {
  size_t off, len;
};
constexpr Field kName{0, 100}, kMode{100, 8}, kUid{108, 8}, kGid{116, 8}, kSize{124, 12},
    kMtime{136, 12}, kChksum{148, 8}, kType{156, 1}, kLinkname{157, 100}, kMagic{257, 6},
    kVersion{263, 2}, kUname{265, 32}, kGname{297, 32}, kDevmajor{329, 8}, kDevminor{337, 8},
    kPrefix{345, 155};

uint64_t padded(uint64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

std::string shown(std::string_view s) { return shown_name(s); }

std::string member_where(const std::string& name) { return "member '" + shown(name) + "'"; }

std::string field_str(const char* h, Field f) {
  const char* p = h + f.off;
  return std::string(p, strnlen(p, f.len));
}

void put_str(char* h, Field f, std::string_view s) {
  std::memcpy(h + f.off, s.data(), std::min(s.size(), f.len));
}

void put_octal(char* h, Field f, uint64_t v) {
  // f.len - 1 zero-padded octal digits and a NUL.
  for (size_t k = f.len - 1; k-- > 0;) {
    h[f.off + k] = char('0' + (v & 7));
    v >>= 3;
  }
  h[f.off + f.len - 1] = '\0';
}

uint64_t checksum(const char* h, bool is_signed) {
  uint64_t sum = 0;
  for (size_t k = 0; k < kBlock; ++k) {
    if (k >= kChksum.off && k < kChksum.off + kChksum.len) {
      sum += ' ';
    } else if (is_signed) {
      sum += uint64_t(int64_t(static_cast<signed char>(h[k])));
    } else {
      sum += static_cast<unsigned char>(h[k]);
    }
  }
  return sum;
}

// Parses a numeric field: octal (leading spaces, ending at a space or NUL) or GNU base-256.
bool parse_number(const char* h, Field f, uint64_t& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(h + f.off);
  if (p[0] & 0x80) {
    if (p[0] != 0x80) return false;  // negative or unsupported
    uint64_t v = 0;
    for (size_t k = 1; k < f.len; ++k) {
      if (v >> 55) return false;  // would overflow 63 bits
      v = (v << 8) | p[k];
    }
    out = v;
    return true;
  }
  size_t k = 0;
  while (k < f.len && p[k] == ' ') ++k;
  uint64_t v = 0;
  for (; k < f.len && p[k] >= '0' && p[k] <= '7'; ++k) {
    if (v >> 60) return false;
    v = v * 8 + (p[k] - '0');
  }
  for (; k < f.len; ++k)
    if (p[k] != ' ' && p[k] != '\0') return false;
  out = v;
  return true;
}

// The pax records a member needs ("" when plain ustar fields suffice), plus the ustar
// prefix/name split of the name.
struct NameLayout {
  std::string prefix, name, pax;
};

std::string pax_record(const std::string& key, const std::string& value) {
  // "<len> <key>=<value>\n" where len counts the whole record, its own digits included.
  size_t body = 1 + key.size() + 1 + value.size() + 1;
  size_t len = body + 1;
  while (std::to_string(len).size() + body != len) len = std::to_string(len).size() + body;
  return std::to_string(len) + " " + key + "=" + value + "\n";
}

NameLayout layout(const std::string& name, uint64_t size) {
  NameLayout l;
  if (name.size() <= kName.len) {
    l.name = name;
  } else {
    // ustar: prefix (<= 155 bytes) "/" name (<= 100 bytes), split at a '/'.
    for (size_t p = name.find('/'); p != std::string::npos; p = name.find('/', p + 1)) {
      if (p <= kPrefix.len && name.size() - p - 1 <= kName.len && p + 1 < name.size()) {
        l.prefix = name.substr(0, p);
        l.name = name.substr(p + 1);
        break;
      }
    }
    if (l.name.empty()) {
      l.name = name.substr(0, kName.len);
      l.pax += pax_record("path", name);
    }
  }
  if (size >= kMaxOctalSize) l.pax += pax_record("size", std::to_string(size));
  return l;
}

void fill_header(char* h, const std::string& prefix, const std::string& name, uint64_t size,
                 char type) {
  std::memset(h, 0, kBlock);
  put_str(h, kName, name);
  put_octal(h, kMode, 0644);
  put_octal(h, kUid, 0);
  put_octal(h, kGid, 0);
  put_octal(h, kSize, size < kMaxOctalSize ? size : 0);
  put_octal(h, kMtime, 0);
  h[kType.off] = type;
  put_str(h, kMagic, std::string_view("ustar\0", 6));
  put_str(h, kVersion, "00");
  put_str(h, kUname, "root");
  put_str(h, kGname, "root");
  put_octal(h, kDevmajor, 0);
  put_octal(h, kDevminor, 0);
  put_str(h, kPrefix, prefix);
  // Checksum: six octal digits, NUL, space (what GNU tar writes).
  uint64_t sum = checksum(h, false);
  char buf[8];
  std::snprintf(buf, sizeof buf, "%06o", unsigned(sum));
  std::memcpy(h + kChksum.off, buf, 6);
  h[kChksum.off + 6] = '\0';
  h[kChksum.off + 7] = ' ';
}

const char* special_kind(char type) {
  switch (type) {
    case '1': return "a hard link";
    case '2': return "a symbolic link";
    case '3': return "a character device";
    case '4': return "a block device";
    case '6': return "a FIFO";
    default: return nullptr;
  }
}

}  // namespace

constexpr const char* kNotUtf8 = "name is not valid UTF-8";

std::string tar_name_problem(std::string_view name) {
  if (name.empty()) return "empty name";
  if (name[0] == '/') return "absolute path";
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) return "control character in name";
  size_t start = 0;
  for (;;) {
    size_t end = name.find('/', start);
    std::string_view part = name.substr(start, end == std::string_view::npos ? end : end - start);
    if (part == "..") return "'..' in path";
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  // Last, so that a name with this problem has no other (allow_non_utf8_names relies on it).
  if (!is_valid_utf8(name)) return kNotUtf8;
  return {};
}

std::string shown_name(std::string_view s) {
  std::string out;
  auto escape = [&](unsigned char c) {
    char b[8];
    std::snprintf(b, sizeof b, "\\x%02x", c);
    out += b;
  };
  while (!s.empty()) {
    const size_t bad = utf8_error_offset(s);
    const std::string_view good = s.substr(0, bad);
    for (unsigned char c : good) {
      if (c < 0x20 || c == 0x7f) escape(c);
      else out += char(c);
    }
    if (bad == std::string_view::npos) break;
    escape(static_cast<unsigned char>(s[bad]));
    s.remove_prefix(bad + 1);
  }
  return out;
}

// ---- writer -----------------------------------------------------------------------

TarWriter::TarWriter(std::string path) : out_(std::move(path)) {}

uint64_t TarWriter::member_bytes(const std::string& name, uint64_t size) {
  NameLayout l = layout(name, size);
  uint64_t n = kBlock + padded(size);
  if (!l.pax.empty()) n += kBlock + padded(l.pax.size());
  return n;
}

uint64_t TarWriter::finish_bytes(uint64_t size) {
  uint64_t end = size + 2 * kBlock;
  return (end + kRecord - 1) / kRecord * kRecord - size;
}

uint64_t TarWriter::add(const std::string& name, std::string_view data) {
  std::string problem = tar_name_problem(name);
  if (!problem.empty())
    throw Error("bad member name: " + problem, out_.path(), member_where(name));
  NameLayout l = layout(name, data.size());
  char h[kBlock];
  static const char zeros[kBlock] = {};
  if (!l.pax.empty()) {
    fill_header(h, {}, "././@PaxHeader", l.pax.size(), 'x');
    out_.write(h, kBlock);
    out_.write(l.pax);
    out_.write(zeros, padded(l.pax.size()) - l.pax.size());
  }
  fill_header(h, l.prefix, l.name, data.size(), '0');
  out_.write(h, kBlock);
  uint64_t offset = out_.size();
  out_.write(data);
  out_.write(zeros, padded(data.size()) - data.size());
  return offset;
}

void TarWriter::finish() {
  std::string tail(finish_bytes(out_.size()), '\0');
  out_.write(tail);
  out_.commit();
}

// ---- reader -----------------------------------------------------------------------

TarReader::TarReader(const std::string& path, TarReadOptions options)
    : path_(path), display_(path == "-" ? "<stdin>" : path), opt_(options) {
  if (path == "-") {
    f_ = stdin;
  } else {
    f_ = std::fopen(path.c_str(), "rb");
    if (!f_) throw Error(std::string("cannot open: ") + std::strerror(errno), path);
    owned_ = true;
  }
  struct stat st {};
  if (::fstat(fileno(f_), &st) == 0 && S_ISREG(st.st_mode) && owned_) {
    seekable_ = true;
    file_size_ = uint64_t(st.st_size);
  }
}

TarReader::~TarReader() {
  if (owned_ && f_) std::fclose(f_);
}

void TarReader::fail(const std::string& what, const std::string& where,
                     const std::string& hint) const {
  throw Error(what, display_, where, hint);
}

size_t TarReader::read_some(char* dst, size_t n) {
  size_t got = 0;
  while (got < n) {
    size_t r = std::fread(dst + got, 1, n - got, f_);
    if (r == 0) {
      if (std::ferror(f_)) fail(std::string("read error: ") + std::strerror(errno), {});
      break;
    }
    got += r;
  }
  pos_ += got;
  return got;
}

void TarReader::read_exact(char* dst, size_t n, const std::string& member, const char* inside) {
  size_t got = read_some(dst, n);
  if (got != n)
    fail(std::string("archive is truncated inside ") + inside, member_where(member),
         "the shard was cut short: re-create or re-download it");
}

void TarReader::skip(uint64_t n, const std::string& member, const char* inside) {
  if (n == 0) return;
  if (seekable_) {
    if (pos_ + n > file_size_)
      fail(std::string("archive is truncated inside ") + inside, member_where(member),
           "the shard was cut short: re-create or re-download it");
    if (::fseeko(f_, off_t(n), SEEK_CUR) != 0)
      fail(std::string("seek failed: ") + std::strerror(errno), member_where(member));
    pos_ += n;
    return;
  }
  char buf[1 << 16];
  while (n > 0) {
    size_t chunk = size_t(std::min<uint64_t>(n, sizeof buf));
    read_exact(buf, chunk, member, inside);
    n -= chunk;
  }
}

std::string TarReader::read_meta(uint64_t size, const std::string& what) {
  std::string where = "header at offset " + std::to_string(pos_ - kBlock) +
                      (last_.empty() ? "" : " (after member '" + shown(last_) + "')");
  if (size > opt_.max_meta_bytes)
    fail(what + " of " + std::to_string(size) + " bytes is implausibly large", where);
  std::string data(size_t(size), '\0');
  size_t got = read_some(data.data(), data.size());
  if (got != data.size()) fail("archive is truncated inside " + what, where);
  skip(padded(size) - size, last_, "padding");
  return data;
}

void TarReader::finish_current() {
  if (!in_member_) return;
  skip(remaining_, last_, "member data");
  skip(padding_, last_, "the padding after member data");
  remaining_ = padding_ = 0;
  in_member_ = false;
}

std::string TarReader::read() {
  if (!in_member_) throw Error("no current member to read", display_);
  std::string out;
  while (remaining_ > 0) {
    // Grow as data arrives: a lying size field cannot make us allocate more than exists.
    size_t chunk = size_t(std::min<uint64_t>(remaining_, uint64_t{1} << 20));
    size_t old = out.size();
    out.resize(old + chunk);
    read_exact(out.data() + old, chunk, last_, "member data");
    remaining_ -= chunk;
  }
  return out;
}

bool TarReader::next(TarMember& member) {
  finish_current();
  if (done_) return false;
  std::string long_name, pax_path;
  bool have_pax_size = false;
  uint64_t pax_size = 0;
  bool pending_meta = false;
  // Skips an entry we do not return (directory, skipped link) and forgets the extended
  // headers that applied to it.
  auto skip_entry = [&](uint64_t size, const std::string& name) {
    skip(size, name, "member data");
    skip(padded(size) - size, name, "the padding after member data");
    pending_meta = false;
    long_name.clear();
    pax_path.clear();
    have_pax_size = false;
  };
  char h[kBlock];
  for (;;) {
    uint64_t header_pos = pos_;
    std::string after = last_.empty() ? "" : " (after member '" + shown(last_) + "')";
    std::string where = "header at offset " + std::to_string(header_pos) + after;
    size_t got = read_some(h, kBlock);
    if (got == 0) {
      if (header_pos == 0) fail("empty file: not a tar archive", {});
      fail("archive ends without the end-of-archive marker (truncated)", where,
           "the shard was cut short: re-create or re-download it");
    }
    if (got < kBlock) fail("archive is truncated inside a header block", where);
    if (std::all_of(h, h + kBlock, [](char c) { return c == 0; })) {
      if (pending_meta) fail("archive ends right after an extended header", where);
      done_ = true;
      return false;
    }
    uint64_t stored = 0;
    if (!parse_number(h, kChksum, stored) ||
        (stored != checksum(h, false) && stored != checksum(h, true))) {
      std::string raw = field_str(h, kName);
      fail("bad header checksum (stored " + std::to_string(stored) + ", computed " +
               std::to_string(checksum(h, false)) + ")",
           raw.empty() ? where : member_where(raw) + " at offset " + std::to_string(header_pos),
           header_pos == 0 ? "is this a tar archive?" : "the archive is corrupt");
    }
    char type = h[kType.off];
    uint64_t size = 0;
    if (!parse_number(h, kSize, size)) fail("bad size field in the header", where);
    if (have_pax_size && type != 'x' && type != 'g' && type != 'L' && type != 'K') size = pax_size;

    if (type == 'x' || type == 'g') {
      std::string recs = read_meta(size, "a pax extended header");
      if (type == 'g') continue;  // global defaults: nothing we use
      pending_meta = true;
      size_t i = 0;
      while (i < recs.size()) {
        size_t sp = recs.find(' ', i);
        size_t len = 0;
        bool ok = sp != std::string::npos && sp > i;
        for (size_t k = i; ok && k < sp; ++k) {
          ok = recs[k] >= '0' && recs[k] <= '9' && len < (uint64_t{1} << 40);
          len = len * 10 + size_t(recs[k] - '0');
        }
        ok = ok && len > sp - i + 1 && i + len <= recs.size() && recs[i + len - 1] == '\n';
        size_t eq = ok ? recs.find('=', sp + 1) : std::string::npos;
        if (!ok || eq == std::string::npos || eq >= i + len)
          fail("malformed pax extended header record", where);
        std::string key = recs.substr(sp + 1, eq - sp - 1);
        std::string value = recs.substr(eq + 1, i + len - 1 - eq - 1);
        if (key == "path") {
          pax_path = value;
        } else if (key == "size") {
          if (value.empty() || value.size() > 19 ||
              !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
            fail("bad size in pax extended header: '" + shown(value) + "'", where);
          pax_size = std::stoull(value);
          have_pax_size = true;
        }
        i += len;
      }
      continue;
    }
    if (type == 'L' || type == 'K') {
      std::string data = read_meta(size, "a GNU long-name header");
      if (type == 'L') long_name = data.substr(0, strnlen(data.data(), data.size()));
      pending_meta = true;
      continue;
    }

    std::string name;
    if (!pax_path.empty()) {
      name = pax_path;
    } else if (!long_name.empty()) {
      name = long_name;
    } else {
      name = field_str(h, kName);
      std::string prefix = field_str(h, kPrefix);
      bool posix = std::memcmp(h + kMagic.off, "ustar\0", 6) == 0;
      if (posix && !prefix.empty()) name = prefix + "/" + name;
    }
    while (name.size() >= 2 && name[0] == '.' && name[1] == '/') name.erase(0, 2);
    bool is_dir = type == '5' || (!name.empty() && name.back() == '/' &&
                                  (type == '0' || type == '\0'));
    if (is_dir) {
      while (!name.empty() && name.back() == '/') name.pop_back();
      if (name.empty() || name == ".") {  // the archive's root "./"
        skip_entry(size, "./");
        continue;
      }
    }
    std::string problem = tar_name_problem(name);
    const bool not_utf8 = problem == kNotUtf8;
    if (not_utf8 && opt_.allow_non_utf8_names) problem.clear();
    if (!problem.empty())
      fail("unsafe member name: " + problem, member_where(name),
           "refusing to read an archive that could write outside its directory");
    last_ = name;
    if (type == 'S') fail("GNU sparse members are not supported", member_where(name));
    if (type == 'M') fail("multi-volume members are not supported", member_where(name));
    const char* kind = special_kind(type);
    if (is_dir || kind || type == 'V') {
      if (kind && !opt_.skip_special) {
        std::string link = field_str(h, kLinkname);
        fail(std::string("member is ") + kind +
                 (type == '1' || type == '2' ? " to '" + shown(link) + "'" : std::string()) +
                 "; links and special files are never followed",
             member_where(name), "re-create the archive with regular files (GNU tar -h)");
      }
      if (kind) ++skipped_;
      // Links and devices carry no data; skip whatever the header claims anyway.
      skip_entry(size, name);
      continue;
    }
    // A regular file ('0', '\0', '7', or an unknown type, which POSIX reads as one).
    if (seekable_ && pos_ + size > file_size_)
      fail("archive is truncated inside member data (" + std::to_string(size) + " bytes, " +
               std::to_string(file_size_ - pos_) + " present)",
           member_where(name), "the shard was cut short: re-create or re-download it");
    member.name = name;
    member.name_not_utf8 = not_utf8;
    member.size = size;
    member.offset = pos_;
    remaining_ = size;
    padding_ = padded(size) - size;
    in_member_ = true;
    return true;
  }
}

}  // namespace eve::io
