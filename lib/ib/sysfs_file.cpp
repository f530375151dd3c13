#include "ipoib/ib/sysfs_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

#include "ipoib/base/errno_error.h"
#include "ipoib/base/file.h"
#include "ipoib/base/strings.h"

namespace ipoib::ib {
namespace {

Error not_available(const std::string& path) {
  return errno_error(ErrorCode::kNotAvailable, "open " + path, ENOENT);
}

}  // namespace

// sysfs and procfs attributes are regular files, reached through symlinks (device/, the
// /sys/class/* entries): follow them, but refuse a FIFO or device an injected root might hold.
Result<std::string> read_text_file(const std::string& path, std::size_t max_bytes) {
  IPOIB_TRY_ASSIGN(
      std::optional<std::string> text,
      read_file_if_exists(AT_FDCWD, path, max_bytes, ErrorCode::kIoFailure, FollowSymlinks::kYes));
  if (!text) {
    return not_available(path);
  }
  return std::move(*text);
}

Result<std::string> read_trimmed(const std::string& path) {
  IPOIB_TRY_ASSIGN(std::string text, read_text_file(path, std::size_t{64} * 1024));
  return std::string(trim(text));
}

Result<std::vector<std::string>> list_directory(const std::string& path) {
  IPOIB_TRY_ASSIGN(
      std::optional<std::vector<std::string>> names,
      list_directory_if_exists(AT_FDCWD, path, ErrorCode::kIoFailure, FollowSymlinks::kYes));
  if (!names) {
    return not_available(path);
  }
  return std::move(*names);
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
