#include "lib/install/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "ipoib/base/errno_error.h"
#include "ipoib/base/file.h"

namespace ipoib::install::detail {
namespace {

constexpr std::size_t kChunkBytes = 1U << 16;

Error io_error(std::string_view what, const std::string& path) {
  return errno_error(ErrorCode::kIoFailure, std::string(what) + " " + path);
}

// Reads up to `n` bytes at `offset`, retrying EINTR and short reads; returns the count (0 at EOF).
Result<std::size_t> pread_full(int fd, char* buf, std::size_t n, off_t offset,
                               const std::string& what) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, buf + got, n - got, offset + static_cast<off_t>(got));
    if (r < 0) {
      if (errno == EINTR) {
        continue;
      }
      return io_error("read", what);
    }
    if (r == 0) {
      break;
    }
    got += static_cast<std::size_t>(r);
  }
  return got;
}

Result<Fd> open_regular(const std::string& path) {
  // O_NONBLOCK: a FIFO planted at the path must not block the installer (fifo(7)).
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid()) {
    return io_error("open", path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return io_error("stat", path);
  }
  if (!S_ISREG(st.st_mode)) {
    return Error(ErrorCode::kIoFailure, path + ": not a regular file");
  }
  return fd;
}

Status fsync_dir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid() || ::fsync(fd.get()) != 0) {
    return io_error("fsync", dir);
  }
  return ok_status();
}

// A temporary file next to `dest`, unlinked on destruction unless committed by rename(2).
class TempFile {
 public:
  static Result<TempFile> create(const std::string& dest) {
    TempFile t;
    t.path_ = dir_name(dest) + "/." + base_name(dest) + ".tmp.XXXXXX";
    std::vector<char> tmpl(t.path_.begin(), t.path_.end());
    tmpl.push_back('\0');
    t.fd_ = Fd(::mkostemp(tmpl.data(), O_CLOEXEC));
    if (!t.fd_.valid()) {
      return io_error("create a temporary file for", dest);
    }
    t.path_.assign(tmpl.data());
    return t;
  }
  TempFile(TempFile&& o) noexcept : path_(std::move(o.path_)), fd_(std::move(o.fd_)) {
    o.path_.clear();
  }
  TempFile& operator=(TempFile&&) = delete;
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (!path_.empty()) {
      ::unlink(path_.c_str());
    }
  }

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] const std::string& path() const { return path_; }

  // fchmod, fsync, close, rename over `dest`, fsync the directory.
  Status commit(const std::string& dest, mode_t mode) {
    if (::fchmod(fd_.get(), mode) != 0) {
      return io_error("chmod", path_);
    }
    if (::fsync(fd_.get()) != 0) {  // data on disk before the name points at it
      return io_error("fsync", path_);
    }
    // Closed before the rename: exec(2) of a file that some process holds open for writing
    // fails with ETXTBSY.
    fd_.reset();
    if (::rename(path_.c_str(), dest.c_str()) != 0) {
      return io_error("rename " + path_ + " to", dest);
    }
    path_.clear();
    return fsync_dir(dir_name(dest));
  }

 private:
  TempFile() = default;
  std::string path_;
  Fd fd_;
};

}  // namespace

std::string dir_name(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_name(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::optional<struct stat> lstat_path(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return std::nullopt;
  }
  return st;
}

bool same_inode(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

Result<bool> same_bytes(const std::string& path, const Fd& fd) {
  IPOIB_TRY_ASSIGN(Fd other, open_regular(path));
  struct stat a {};
  struct stat b {};
  if (::fstat(fd.get(), &a) != 0 || ::fstat(other.get(), &b) != 0) {
    return io_error("stat", path);
  }
  if (a.st_size != b.st_size) {
    return false;
  }
  std::vector<char> x(kChunkBytes);
  std::vector<char> y(kChunkBytes);
  for (off_t off = 0;;) {
    IPOIB_TRY_ASSIGN(std::size_t n, pread_full(fd.get(), x.data(), x.size(), off, "source"));
    IPOIB_TRY_ASSIGN(std::size_t m, pread_full(other.get(), y.data(), y.size(), off, path));
    if (n != m || std::memcmp(x.data(), y.data(), n) != 0) {
      return false;
    }
    if (n == 0) {
      return true;
    }
    off += static_cast<off_t>(n);
  }
}

Result<bool> holds_text(const std::string& path, std::string_view text) {
  IPOIB_TRY_ASSIGN(Fd fd, open_regular(path));
  std::string got(text.size() + 1, '\0');
  IPOIB_TRY_ASSIGN(std::size_t n, pread_full(fd.get(), got.data(), got.size(), 0, path));
  return n == text.size() && std::string_view(got.data(), n) == text;
}

Result<bool> elf_with_marker(const std::string& path, std::string_view marker) {
  IPOIB_TRY_ASSIGN(Fd fd, open_regular(path));
  std::vector<char> buf(kChunkBytes + marker.size());
  std::size_t carried = 0;  // the tail of the previous chunk, so a marker across chunks is found
  for (off_t off = 0;;) {
    IPOIB_TRY_ASSIGN(std::size_t n,
                     pread_full(fd.get(), buf.data() + carried, kChunkBytes, off, path));
    if (off == 0 && (n < 4 || std::memcmp(buf.data(),
                                          "\x7f"
                                          "ELF",
                                          4) != 0)) {
      return false;
    }
    const std::string_view window(buf.data(), carried + n);
    if (window.find(marker) != std::string_view::npos) {
      return true;
    }
    if (n == 0) {
      return false;
    }
    off += static_cast<off_t>(n);
    carried = std::min(window.size(), marker.size() - 1);
    std::memmove(buf.data(), window.data() + window.size() - carried, carried);
  }
}

Status make_dirs(const std::string& dir, mode_t mode) {
  if (dir.empty() || dir == "/") {
    return ok_status();
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return Error(ErrorCode::kIoFailure, dir + ": exists and is not a directory");
    }
    return ok_status();
  }
  IPOIB_TRY(make_dirs(dir_name(dir), mode));
  if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST) {
    return io_error("mkdir", dir);
  }
  return ok_status();
}

Status atomic_copy(const Fd& src, const std::string& dest, mode_t mode) {
  IPOIB_TRY_ASSIGN(TempFile tmp, TempFile::create(dest));
  std::vector<char> buf(kChunkBytes);
  for (off_t off = 0;;) {
    IPOIB_TRY_ASSIGN(std::size_t n, pread_full(src.get(), buf.data(), buf.size(), off, "source"));
    if (n == 0) {
      break;
    }
    IPOIB_TRY(write_all(tmp.fd(), std::string_view(buf.data(), n), tmp.path()));
    off += static_cast<off_t>(n);
  }
  return tmp.commit(dest, mode);
}

Status atomic_write(std::string_view text, const std::string& dest, mode_t mode) {
  IPOIB_TRY_ASSIGN(TempFile tmp, TempFile::create(dest));
  IPOIB_TRY(write_all(tmp.fd(), text, tmp.path()));
  return tmp.commit(dest, mode);
}

Status atomic_link(const std::string& target, const std::string& dest) {
  // A random name, retried on EEXIST: installers in two containers may both be PID 1.
  std::random_device random;
  std::string tmp;
  for (int attempt = 0;; ++attempt) {
    char suffix[16];
    (void)std::snprintf(suffix, sizeof suffix, "%08x", static_cast<unsigned>(random()));
    tmp = dir_name(dest) + "/." + base_name(dest) + ".tmp.link" + suffix;
    if (::link(target.c_str(), tmp.c_str()) == 0) {
      break;
    }
    if (errno != EEXIST || attempt >= 16) {
      return io_error("link " + target + " as", tmp);
    }
  }
  if (::rename(tmp.c_str(), dest.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return errno_error(ErrorCode::kIoFailure, "rename " + tmp + " to " + dest, err);
  }
  return fsync_dir(dir_name(dest));
}

Status remove_file(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return io_error("remove", path);
  }
  return fsync_dir(dir_name(path));
}

}  // namespace ipoib::install::detail
