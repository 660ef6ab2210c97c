#include "eve/io/input_text.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "eve/core/error.h"
#include "eve/io/file.h"

namespace eve::io {

InputText::InputText(const std::string& path) : name_(path == "-" ? "<stdin>" : path) {
  if (path != "-") {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(std::string("cannot open: ") + std::strerror(errno), name_);
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
      void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE | MAP_POPULATE,
                       fd, 0);
      if (p != MAP_FAILED) {
        map_ = static_cast<const char*>(p);
        size_ = static_cast<size_t>(st.st_size);
      }
    }
    ::close(fd);
    if (map_) return;
  }
  owned_ = read_file(path);
}

InputText::~InputText() {
  if (map_) ::munmap(const_cast<char*>(map_), size_);
}

}  // namespace eve::io
