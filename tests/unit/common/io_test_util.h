// Helpers shared by the io, data and eval tests: a scratch directory, raw file writes, error
// assertions and running the Python interop scripts.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "eve/core/error.h"
#include "eve/io/file.h"

namespace eve::test {

class TempDir {
 public:
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "eve-io-test-XXXXXX").string();
    if (!::mkdtemp(t.data())) throw std::runtime_error("mkdtemp failed");
    path_ = t;
  }
  ~TempDir() {
    eve::io::try_remove_tree(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Names of the entries in the directory, sorted.
  std::vector<std::string> list() const {
    std::vector<std::string> out;
    for (auto& e : std::filesystem::directory_iterator(path_)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::string path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Runs fn, expects an eve::Error whose text contains every one of `parts`; returns the text.
inline std::string expect_error(const std::function<void()>& fn,
                                std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const eve::Error& e) {
    std::string what = e.what();
    for (const auto& p : parts)
      EXPECT_NE(what.find(p), std::string::npos) << "error text lacks \"" << p << "\": " << what;
    return what;
  }
  ADD_FAILURE() << "expected an eve::Error";
  return {};
}

inline std::string to_hex(const void* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<const unsigned char*>(p)[i];
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}
inline std::string to_hex(const std::string& s) { return to_hex(s.data(), s.size()); }

// A broken input and what its error text must contain.
struct Hostile {
  const char* name;
  std::string bytes;
  std::vector<std::string> expect;
};

// Writes each case to `dir`/`file`, runs open(path) and checks the error names the file
// and every expected part.
inline void check_hostile(const std::string& dir, const std::string& file,
                          const std::vector<Hostile>& cases,
                          const std::function<void(const std::string&)>& open) {
  std::string path = dir + "/" + file;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    write_bytes(path, c.bytes);
    std::string what = expect_error([&] { open(path); }, {path});
    for (const auto& e : c.expect)
      EXPECT_NE(what.find(e), std::string::npos) << "lacks \"" << e << "\": " << what;
  }
}

inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs fn with standard input (descriptor 0 and stdin) reading from a pipe fed by
// `cat file`, which cannot seek; restores stdin afterwards.
inline void with_stdin_pipe(const std::string& file, const std::function<void()>& fn) {
  FILE* pipe = ::popen(("cat " + quote(file)).c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  int saved = ::dup(0);
  ::dup2(fileno(pipe), 0);
  std::clearerr(stdin);
  fn();
  ::dup2(saved, 0);
  ::close(saved);
  ::pclose(pipe);
  std::clearerr(stdin);
}

inline std::string python() {
  const char* p = std::getenv("EVE_PYTHON");
  return p && *p ? p : EVE_TEST_PYTHON;
}

inline std::string reference_script(const std::string& name) {
  return std::string(EVE_TEST_REFERENCE) + "/" + name;
}

// Runs a shell command; returns its exit status and (in `out`) stdout + stderr.
inline int run_command(const std::string& cmd, std::string* out = nullptr) {
  std::string text;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  int st = ::pclose(p);
  if (out) *out = text;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}


// Runs tests/reference/<script> with the Python that has numpy: `script mode dir`.
inline int run_reference(const std::string& script, const std::string& mode,
                         const std::string& dir, std::string* out) {
  return run_command(python() + " " + quote(reference_script(script)) + " " + mode + " " +
                         quote(dir),
                     out);
}

}  // namespace eve::test
