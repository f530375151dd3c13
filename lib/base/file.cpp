#include "ipoib/base/file.h"

#include <dirent.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <utility>

#include "ipoib/base/errno_error.h"

namespace ipoib {
namespace {

struct DirCloser {
  void operator()(DIR* dir) const { ::closedir(dir); }
};

std::string_view wanted_name(FileType type) {
  return type == FileType::kRegular ? "regular file" : "directory";
}

bool is_type(mode_t st_mode, FileType type) {
  return type == FileType::kRegular ? S_ISREG(st_mode) : S_ISDIR(st_mode);
}

Error wrong_type(ErrorCode code, const std::string& path, mode_t st_mode, FileType type) {
  return {code, path + " is a " + std::string(file_kind_name(st_mode)) + ", not a " +
                    std::string(wanted_name(type))};
}

// open(2) failed with `err`: when the path exists but is of the wrong kind (O_NOFOLLOW on a
// symlink gives ELOOP, O_DIRECTORY on a file ENOTDIR, a FIFO without reader or a socket ENXIO),
// say what it is instead of quoting errno.
Error open_error(int dir_fd, const std::string& path, FileType type, ErrorCode code, int err) {
  if (err == ELOOP || err == ENOTDIR || err == ENXIO || err == EISDIR || err == ENODEV) {
    struct stat st {};
    if (::fstatat(dir_fd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        !is_type(st.st_mode, type)) {
      return wrong_type(code, path, st.st_mode, type);
    }
  }
  return errno_error(code, "open " + path, err);
}

std::string random_hex16() {
  std::uint64_t value = 0;
  if (::getrandom(&value, sizeof value, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof value)) {
    // No entropy yet (early boot): O_EXCL still makes a collision an error, never a clobber.
    static unsigned counter = 0;
    value = (static_cast<std::uint64_t>(::getpid()) << 32) ^ ++counter;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(16, '0');
  for (char& c : hex) {
    c = kHex[value >> 60];
    value <<= 4;
  }
  return hex;
}

}  // namespace

std::string_view file_kind_name(mode_t st_mode) {
  if (S_ISREG(st_mode)) return "regular file";
  if (S_ISDIR(st_mode)) return "directory";
  if (S_ISFIFO(st_mode)) return "FIFO";
  if (S_ISSOCK(st_mode)) return "socket";
  if (S_ISCHR(st_mode)) return "character device";
  if (S_ISBLK(st_mode)) return "block device";
  if (S_ISLNK(st_mode)) return "symbolic link";
  return "file of unknown type";
}

Result<Fd> open_checked(int dir_fd, const std::string& path, int flags, FileType type,
                        ErrorCode code, mode_t create_mode, FollowSymlinks follow) {
  int all = flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  if (follow == FollowSymlinks::kNo) {
    all |= O_NOFOLLOW;
  }
  if (type == FileType::kDirectory) {
    all |= O_DIRECTORY;
  }
  Fd fd(::openat(dir_fd, path.c_str(), all, create_mode));
  if (!fd.valid()) {
    return open_error(dir_fd, path, type, code, errno);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return errno_error(code, "stat " + path);
  }
  if (!is_type(st.st_mode, type)) {
    return wrong_type(code, path, st.st_mode, type);
  }
  if ((flags & O_NONBLOCK) == 0) {
    const int fl = ::fcntl(fd.get(), F_GETFL);
    if (fl < 0 || ::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK) != 0) {
      return errno_error(code, "fcntl " + path);
    }
  }
  return fd;
}

Result<std::string> read_all(int fd, const std::string& path_for_errors, std::size_t max_bytes) {
  // Reads straight into the string: no bounce buffer, so a pool snapshot is copied once (by the
  // kernel), not twice. The string grows geometrically; for a regular file, whose size is known,
  // it is sized once (one byte more, so that the end of the file is one short read).
  std::string text;
  std::size_t want = 16384;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    want = static_cast<std::size_t>(st.st_size) + 1;
  }
  std::size_t have = 0;
  for (;;) {
    // Ask for one byte more than allowed, so "exactly max_bytes" and "more" differ.
    const std::size_t cap = max_bytes < want ? max_bytes + 1 : want;
    if (text.size() < cap) {
      text.resize(cap);
    }
    const ssize_t n = ::read(fd, text.data() + have, text.size() - have);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno_error(ErrorCode::kIoFailure, "read " + path_for_errors);
    }
    if (n == 0) {
      text.resize(have);
      return text;
    }
    have += static_cast<std::size_t>(n);
    if (have > max_bytes) {
      return Error(ErrorCode::kIoFailure,
                   path_for_errors + " is larger than " + std::to_string(max_bytes) + " bytes");
    }
    if (have == text.size()) {
      want = text.size() * 2;
    }
  }
}

FileBytes::FileBytes(std::string text) : text_(std::make_unique<std::string>(std::move(text))) {}

FileBytes::FileBytes(FileBytes&& other) noexcept
    : text_(std::move(other.text_)),
      map_(std::exchange(other.map_, nullptr)),
      map_bytes_(std::exchange(other.map_bytes_, 0)) {}

FileBytes& FileBytes::operator=(FileBytes&& other) noexcept {
  if (this != &other) {
    if (map_ != nullptr) {
      ::munmap(map_, map_bytes_);
    }
    text_ = std::move(other.text_);
    map_ = std::exchange(other.map_, nullptr);
    map_bytes_ = std::exchange(other.map_bytes_, 0);
  }
  return *this;
}

FileBytes::~FileBytes() {
  if (map_ != nullptr) {
    ::munmap(map_, map_bytes_);  // also unlocks
  }
}

std::string_view FileBytes::view() const {
  if (map_ != nullptr) {
    return {static_cast<const char*>(map_), map_bytes_};
  }
  return text_ ? std::string_view(*text_) : std::string_view();
}

Result<FileBytes> map_or_read_all(int fd, const std::string& path_for_errors,
                                  std::size_t max_bytes) {
  constexpr std::size_t kMapFrom = std::size_t{64} << 10;  // below: a copy is as cheap
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<std::size_t>(st.st_size) >= kMapFrom) {
    const auto bytes = static_cast<std::size_t>(st.st_size);
    if (bytes > max_bytes) {
      return Error(ErrorCode::kIoFailure,
                   path_for_errors + " is larger than " + std::to_string(max_bytes) + " bytes");
    }
    void* map = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (map != MAP_FAILED) {
      if (::mlock(map, bytes) == 0) {
        FileBytes out;
        out.map_ = map;
        out.map_bytes_ = bytes;
        return out;
      }
      ::munmap(map, bytes);
    }
  }
  IPOIB_TRY_ASSIGN(std::string text, read_all(fd, path_for_errors, max_bytes));
  return FileBytes(std::move(text));
}

Result<std::string> read_file(int dir_fd, const std::string& path, std::size_t max_bytes,
                              ErrorCode code, FollowSymlinks follow) {
  IPOIB_TRY_ASSIGN(Fd fd,
                   open_checked(dir_fd, path, O_RDONLY, FileType::kRegular, code, 0, follow));
  auto text = read_all(fd.get(), path, max_bytes);
  if (!text) {
    return Error(code, text.error().msg());
  }
  return text;
}

namespace {

// Whether `path` does not exist (ENOENT, or ENOTDIR: a component is not a directory): asked after
// an open failed, to tell "missing" from "refused".
bool is_missing(int dir_fd, const std::string& path, FollowSymlinks follow) {
  struct stat st {};
  const int at_flags = follow == FollowSymlinks::kNo ? AT_SYMLINK_NOFOLLOW : 0;
  return ::fstatat(dir_fd, path.c_str(), &st, at_flags) != 0 &&
         (errno == ENOENT || errno == ENOTDIR);
}

}  // namespace

Result<std::optional<std::string>> read_file_if_exists(int dir_fd, const std::string& path,
                                                       std::size_t max_bytes, ErrorCode code,
                                                       FollowSymlinks follow) {
  auto text = read_file(dir_fd, path, max_bytes, code, follow);
  if (!text) {
    if (is_missing(dir_fd, path, follow)) {
      return std::optional<std::string>();
    }
    return std::move(text).error();
  }
  return std::optional<std::string>(std::move(text).value());
}

Status write_all(int fd, std::string_view bytes, const std::string& path_for_errors) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno_error(ErrorCode::kIoFailure, "write " + path_for_errors);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return ok_status();
}

Status publish_file(int dir_fd, const std::string& dir_path, const std::string& name,
                    std::string_view bytes, mode_t mode, Durability durability) {
  const bool durable = durability == Durability::kDurable;
  const std::string path = dir_path + "/" + name;
  const std::string tmp = std::string(kPublishTempPrefix) + name + "." + random_hex16();
  IPOIB_TRY_ASSIGN(Fd fd, open_checked(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL, FileType::kRegular,
                                       ErrorCode::kIoFailure, mode));
  auto fail = [&](Error e) -> Status {
    fd.reset();
    ::unlinkat(dir_fd, tmp.c_str(), 0);
    return e;
  };
  if (::fchmod(fd.get(), mode) != 0) {
    return fail(errno_error(ErrorCode::kIoFailure, "chmod " + dir_path + "/" + tmp));
  }
  if (auto s = write_all(fd.get(), bytes, path); !s) {
    return fail(std::move(s).error());
  }
  if (durable && ::fsync(fd.get()) != 0) {
    return fail(errno_error(ErrorCode::kIoFailure, "fsync " + path));
  }
  if (::close(fd.release()) != 0) {
    return fail(errno_error(ErrorCode::kIoFailure, "close " + path));
  }
  if (::renameat(dir_fd, tmp.c_str(), dir_fd, name.c_str()) != 0) {
    return fail(errno_error(ErrorCode::kIoFailure, "rename into " + path));
  }
  if (durable && ::fsync(dir_fd) != 0) {
    return errno_error(ErrorCode::kIoFailure, "fsync directory " + dir_path + " (" + name +
                                                  " was replaced, durability in doubt)");
  }
  return ok_status();
}

Result<std::vector<std::string>> list_directory(int dir_fd, const std::string& path_for_errors) {
  Fd dup(::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0));
  if (!dup.valid()) {
    return errno_error(ErrorCode::kIoFailure, "dup " + path_for_errors);
  }
  std::unique_ptr<DIR, DirCloser> dir(::fdopendir(dup.get()));
  if (!dir) {
    return errno_error(ErrorCode::kIoFailure, "opendir " + path_for_errors);
  }
  (void)dup.release();     // owned by dir now
  ::rewinddir(dir.get());  // the duplicate shares the original's offset
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(dir.get());
    if (entry == nullptr) {
      if (errno != 0) {
        return errno_error(ErrorCode::kIoFailure, "readdir " + path_for_errors);
      }
      break;
    }
    const std::string_view n = entry->d_name;
    if (n != "." && n != "..") {
      names.emplace_back(n);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::optional<std::vector<std::string>>> list_directory_if_exists(int dir_fd,
                                                                         const std::string& path,
                                                                         ErrorCode code,
                                                                         FollowSymlinks follow) {
  auto dir = open_checked(dir_fd, path, O_RDONLY, FileType::kDirectory, code, 0, follow);
  if (!dir) {
    if (is_missing(dir_fd, path, follow)) {
      return std::optional<std::vector<std::string>>();
    }
    return std::move(dir).error();
  }
  IPOIB_TRY_ASSIGN(std::vector<std::string> names, list_directory(dir->get(), path));
  return std::optional<std::vector<std::string>>(std::move(names));
}

}  // namespace ipoib
