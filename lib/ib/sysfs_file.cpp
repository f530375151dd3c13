#include "ipoib/ib/sysfs_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include "ipoib/base/errno_error.h"
#include "ipoib/base/fd.h"
#include "ipoib/base/strings.h"

namespace ipoib::ib {
namespace {

ErrorCode code_for(int err) {
  return (err == ENOENT || err == ENOTDIR) ? ErrorCode::kNotAvailable : ErrorCode::kIoFailure;
}

struct DirCloser {
  void operator()(DIR* dir) const { ::closedir(dir); }
};

}  // namespace

Result<std::string> read_text_file(const std::string& path, std::size_t max_bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    return errno_error(code_for(err), "open " + path, err);
  }
  std::string text;
  char buf[4096];
  while (text.size() < max_bytes) {
    const ssize_t n = ::read(fd.get(), buf, std::min(sizeof buf, max_bytes - text.size()));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      const int err = errno;
      return errno_error(code_for(err), "read " + path, err);
    }
    if (n == 0) {
      break;
    }
    text.append(buf, static_cast<std::size_t>(n));
  }
  return text;
}

Result<std::string> read_trimmed(const std::string& path) {
  IPOIB_TRY_ASSIGN(std::string text, read_text_file(path, std::size_t{64} * 1024));
  return std::string(trim(text));
}

Result<std::vector<std::string>> list_directory(const std::string& path) {
  const int dir_fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {
    const int err = errno;
    return errno_error(code_for(err), "open directory " + path, err);
  }
  std::unique_ptr<DIR, DirCloser> dir(::fdopendir(dir_fd));
  if (!dir) {
    const int err = errno;
    ::close(dir_fd);
    return errno_error(ErrorCode::kIoFailure, "fdopendir " + path, err);
  }
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* entry = ::readdir(dir.get())) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") {
      names.emplace_back(name);
    }
  }
  if (errno != 0) {
    return errno_error(ErrorCode::kIoFailure, "readdir " + path);
  }
  std::sort(names.begin(), names.end());
  return names;
}

PathKind path_kind(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return PathKind::kMissing;
  }
  if (S_ISREG(st.st_mode)) {
    return PathKind::kFile;
  }
  if (S_ISDIR(st.st_mode)) {
    return PathKind::kDirectory;
  }
  return PathKind::kOther;
}

}  // namespace ipoib::ib
