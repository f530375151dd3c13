// base/file.h: hostile file types are refused without blocking, publish is crash-safe.
#include "ipoib/base/file.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "temp_dir.h"

using ipoib::ErrorCode;
using ipoib::FileType;
using ipoib::FollowSymlinks;
using ipoib::testing::TempDir;

namespace {

void put(const std::string& path, const std::string& text) {
  ipoib::Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  REQUIRE(fd.valid());
  REQUIRE(ipoib::write_all(fd.get(), text, path).ok());
}

bool has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Raises RLIMIT_FSIZE back on scope exit; writes past the limit fail with EFBIG.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim = saved_;
    lim.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &lim);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_{};
  sighandler_t old_handler_{};
};

}  // namespace

TEST_CASE("open_checked reads a regular file and clears O_NONBLOCK") {
  TempDir dir("file-test");
  put(dir.abs("a"), "hello");
  auto fd = ipoib::open_checked(AT_FDCWD, dir.abs("a"), O_RDONLY, FileType::kRegular);
  REQUIRE(fd.ok());
  const int fl = ::fcntl(fd->get(), F_GETFL);
  CHECK((fl & O_NONBLOCK) == 0);
  CHECK((::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC) != 0);
  auto text = ipoib::read_all(fd->get(), dir.abs("a"), 100);
  REQUIRE(text.ok());
  CHECK(*text == "hello");
}

TEST_CASE("a FIFO is refused at once, for reading and for writing") {
  TempDir dir("file-test");
  const std::string fifo = dir.abs("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  for (int flags : {O_RDONLY, O_WRONLY, O_WRONLY | O_CREAT | O_APPEND, O_RDWR}) {
    auto fd = ipoib::open_checked(AT_FDCWD, fifo, flags, FileType::kRegular,
                                  ErrorCode::kInvalidNetworkConfig);
    REQUIRE_FALSE(fd.ok());
    CHECK(fd.error().code() == ErrorCode::kInvalidNetworkConfig);
    CHECK(fd.error().msg() == fifo + " is a FIFO, not a regular file");
  }
  auto text = ipoib::read_file(AT_FDCWD, fifo, 100);
  REQUIRE_FALSE(text.ok());
  CHECK(has(text.error().msg(), "is a FIFO"));
}

TEST_CASE("a socket, a device and a directory are refused as regular files") {
  TempDir dir("file-test");
  const std::string sock_path = dir.abs("sock");
  ipoib::Fd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(sock.valid());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  REQUIRE(sock_path.size() < sizeof addr.sun_path);
  std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
  REQUIRE(::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(sock.get(), 1) == 0);
  for (int flags : {O_RDONLY, O_WRONLY}) {
    auto fd = ipoib::open_checked(AT_FDCWD, sock_path, flags, FileType::kRegular);
    REQUIRE_FALSE(fd.ok());
    CHECK(fd.error().msg() == sock_path + " is a socket, not a regular file");
  }

  auto null = ipoib::open_checked(AT_FDCWD, "/dev/null", O_WRONLY | O_APPEND, FileType::kRegular,
                                  ErrorCode::kIoFailure, 0600, FollowSymlinks::kYes);
  REQUIRE_FALSE(null.ok());
  CHECK(null.error().msg() == "/dev/null is a character device, not a regular file");

  auto d = ipoib::open_checked(AT_FDCWD, dir.path(), O_RDONLY, FileType::kRegular);
  REQUIRE_FALSE(d.ok());
  CHECK(d.error().msg() == dir.path() + " is a directory, not a regular file");
}

TEST_CASE("a directory is opened as one, a file is not a directory") {
  TempDir dir("file-test");
  put(dir.abs("f"), "x");
  CHECK(ipoib::open_checked(AT_FDCWD, dir.path(), O_RDONLY, FileType::kDirectory).ok());
  auto f = ipoib::open_checked(AT_FDCWD, dir.abs("f"), O_RDONLY, FileType::kDirectory);
  REQUIRE_FALSE(f.ok());
  CHECK(f.error().msg() == dir.abs("f") + " is a regular file, not a directory");
  REQUIRE(::mkfifo(dir.abs("fifo").c_str(), 0600) == 0);
  auto p = ipoib::open_checked(AT_FDCWD, dir.abs("fifo"), O_RDONLY, FileType::kDirectory);
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().msg() == dir.abs("fifo") + " is a FIFO, not a directory");
}

TEST_CASE("a symlink is refused unless following is asked for") {
  TempDir dir("file-test");
  put(dir.abs("target"), "data");
  REQUIRE(::symlink(dir.abs("target").c_str(), dir.abs("link").c_str()) == 0);
  auto refused = ipoib::read_file(AT_FDCWD, dir.abs("link"), 100);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().msg() == dir.abs("link") + " is a symbolic link, not a regular file");
  auto created = ipoib::open_checked(AT_FDCWD, dir.abs("link"), O_WRONLY | O_CREAT | O_APPEND,
                                     FileType::kRegular);
  REQUIRE_FALSE(created.ok());
  CHECK(has(created.error().msg(), "is a symbolic link"));
  auto followed =
      ipoib::read_file(AT_FDCWD, dir.abs("link"), 100, ErrorCode::kIoFailure, FollowSymlinks::kYes);
  REQUIRE(followed.ok());
  CHECK(*followed == "data");

  // A symlink to a FIFO, followed, is still a FIFO.
  REQUIRE(::mkfifo(dir.abs("fifo").c_str(), 0600) == 0);
  REQUIRE(::symlink(dir.abs("fifo").c_str(), dir.abs("fifolink").c_str()) == 0);
  auto via = ipoib::read_file(AT_FDCWD, dir.abs("fifolink"), 100, ErrorCode::kIoFailure,
                              FollowSymlinks::kYes);
  REQUIRE_FALSE(via.ok());
  CHECK(has(via.error().msg(), "is a FIFO"));
}

TEST_CASE("open_checked is relative to dir_fd and creates with the mode") {
  TempDir dir("file-test");
  auto d = ipoib::open_checked(AT_FDCWD, dir.path(), O_RDONLY, FileType::kDirectory);
  REQUIRE(d.ok());
  auto f = ipoib::open_checked(d->get(), "new", O_WRONLY | O_CREAT | O_EXCL, FileType::kRegular,
                               ErrorCode::kIoFailure, 0600);
  REQUIRE(f.ok());
  struct stat st {};
  REQUIRE(::stat(dir.abs("new").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto missing = ipoib::open_checked(d->get(), "absent", O_RDONLY, FileType::kRegular,
                                     ErrorCode::kInvalidEnvironment);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code() == ErrorCode::kInvalidEnvironment);
  CHECK(missing.error().msg() == "open absent: No such file or directory");
}

TEST_CASE("read_all enforces the size limit exactly") {
  TempDir dir("file-test");
  put(dir.abs("ten"), "0123456789");
  auto exact = ipoib::read_file(AT_FDCWD, dir.abs("ten"), 10);
  REQUIRE(exact.ok());
  CHECK(*exact == "0123456789");
  auto over = ipoib::read_file(AT_FDCWD, dir.abs("ten"), 9, ErrorCode::kInvalidNetworkConfig);
  REQUIRE_FALSE(over.ok());
  CHECK(over.error().code() == ErrorCode::kInvalidNetworkConfig);
  CHECK(over.error().msg() == dir.abs("ten") + " is larger than 9 bytes");
  put(dir.abs("empty"), "");
  CHECK(ipoib::read_file(AT_FDCWD, dir.abs("empty"), 0).ok());
  const std::string big(100000, 'x');
  put(dir.abs("big"), big);
  CHECK(*ipoib::read_file(AT_FDCWD, dir.abs("big"), big.size()) == big);
}

TEST_CASE("read_file_if_exists tells a missing file from a bad one") {
  TempDir dir("file-test");
  auto missing = ipoib::read_file_if_exists(AT_FDCWD, dir.abs("absent"), 10);
  REQUIRE(missing.ok());
  CHECK_FALSE(missing->has_value());
  put(dir.abs("f"), "x");
  CHECK(**ipoib::read_file_if_exists(AT_FDCWD, dir.abs("f"), 10) == "x");
  REQUIRE(::mkfifo(dir.abs("fifo").c_str(), 0600) == 0);
  CHECK_FALSE(ipoib::read_file_if_exists(AT_FDCWD, dir.abs("fifo"), 10).ok());
}

TEST_CASE("publish_file replaces atomically with the exact mode") {
  // kAtomicOnly skips the fsyncs only: the same file, mode and clean directory.
  const auto durability = GENERATE(ipoib::Durability::kDurable, ipoib::Durability::kAtomicOnly);
  TempDir dir("file-test");
  auto d = ipoib::open_checked(AT_FDCWD, dir.path(), O_RDONLY, FileType::kDirectory);
  REQUIRE(d.ok());
  const mode_t old_umask = ::umask(077);
  REQUIRE(ipoib::publish_file(d->get(), dir.path(), "conf", "one", 0644, durability).ok());
  ::umask(old_umask);
  struct stat st {};
  REQUIRE(::stat(dir.abs("conf").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
  CHECK(*ipoib::read_file(AT_FDCWD, dir.abs("conf"), 100) == "one");
  REQUIRE(ipoib::publish_file(d->get(), dir.path(), "conf", "two", 0600, durability).ok());
  CHECK(*ipoib::read_file(AT_FDCWD, dir.abs("conf"), 100) == "two");
  auto names = ipoib::list_directory(d->get(), dir.path());
  REQUIRE(names.ok());
  CHECK(*names == std::vector<std::string>{"conf"});
}

TEST_CASE("publish_file removes its temporary file when the write fails") {
  TempDir dir("file-test");
  auto d = ipoib::open_checked(AT_FDCWD, dir.path(), O_RDONLY, FileType::kDirectory);
  REQUIRE(d.ok());
  REQUIRE(ipoib::publish_file(d->get(), dir.path(), "pool", "old", 0600).ok());
  {
    FileSizeLimit limit(16);  // a write past 16 bytes fails with EFBIG, as a full disk would
    auto s = ipoib::publish_file(d->get(), dir.path(), "pool", std::string(4096, 'n'), 0600);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code() == ErrorCode::kIoFailure);
    CHECK(has(s.error().msg(), "write " + dir.path() + "/pool"));
  }
  CHECK(*ipoib::read_file(AT_FDCWD, dir.abs("pool"), 100) == "old");
  CHECK(*ipoib::list_directory(d->get(), dir.path()) == std::vector<std::string>{"pool"});
}

TEST_CASE("publish_file removes its temporary file when the rename fails") {
  TempDir dir("file-test");
  REQUIRE(::mkdir(dir.abs("taken").c_str(), 0700) == 0);
  put(dir.abs("taken/inside"), "x");  // a non-empty directory cannot be renamed over
  auto d = ipoib::open_checked(AT_FDCWD, dir.path(), O_RDONLY, FileType::kDirectory);
  REQUIRE(d.ok());
  auto s = ipoib::publish_file(d->get(), dir.path(), "taken", "bytes", 0600);
  REQUIRE_FALSE(s.ok());
  CHECK(has(s.error().msg(), "rename into " + dir.path() + "/taken"));
  CHECK(*ipoib::list_directory(d->get(), dir.path()) == std::vector<std::string>{"taken"});
}

TEST_CASE("publish_file fails cleanly when no descriptor is left") {
  TempDir dir("file-test");
  auto d = ipoib::open_checked(AT_FDCWD, dir.path(), O_RDONLY, FileType::kDirectory);
  REQUIRE(d.ok());
  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
  rlimit lim = saved;
  lim.rlim_cur = static_cast<rlim_t>(d->get());  // every fd >= the directory's is out of range
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &lim) == 0);
  auto s = ipoib::publish_file(d->get(), dir.path(), "pool", "bytes", 0600);
  ::setrlimit(RLIMIT_NOFILE, &saved);
  REQUIRE_FALSE(s.ok());
  CHECK(has(s.error().msg(), "Too many open files"));
  CHECK(ipoib::list_directory(d->get(), dir.path())->empty());
}

TEST_CASE("list_directory lists names, sorted, and leaves dir_fd usable") {
  TempDir dir("file-test");
  put(dir.abs("b"), "");
  put(dir.abs("a"), "");
  REQUIRE(::mkdir(dir.abs("c").c_str(), 0700) == 0);
  auto d = ipoib::open_checked(AT_FDCWD, dir.path(), O_RDONLY, FileType::kDirectory);
  REQUIRE(d.ok());
  const std::vector<std::string> want{"a", "b", "c"};
  CHECK(*ipoib::list_directory(d->get(), dir.path()) == want);
  CHECK(*ipoib::list_directory(d->get(), dir.path()) == want);  // again: the offset is rewound
  struct stat st {};
  CHECK(::fstat(d->get(), &st) == 0);
  CHECK_FALSE(ipoib::list_directory(-1, "nowhere").ok());
}

TEST_CASE(
    "list_directory_if_exists: missing is nullopt, a non-directory is refused, links only "
    "when followed") {
  TempDir dir("file-test");
  put(dir.abs("f"), "");
  REQUIRE(::mkdir(dir.abs("d").c_str(), 0700) == 0);
  put(dir.abs("d/x"), "");
  REQUIRE(::symlink("d", dir.abs("link").c_str()) == 0);
  REQUIRE(::mkfifo(dir.abs("fifo").c_str(), 0600) == 0);

  auto listed = ipoib::list_directory_if_exists(AT_FDCWD, dir.abs("d"));
  REQUIRE(listed.ok());
  REQUIRE(listed->has_value());
  CHECK(**listed == std::vector<std::string>{"x"});
  for (const char* missing : {"nothing", "f/below"}) {  // ENOENT, ENOTDIR
    auto none = ipoib::list_directory_if_exists(AT_FDCWD, dir.abs(missing));
    REQUIRE(none.ok());
    CHECK_FALSE(none->has_value());
  }
  for (const char* wrong : {"f", "fifo", "link"}) {
    auto refused =
        ipoib::list_directory_if_exists(AT_FDCWD, dir.abs(wrong), ErrorCode::kNotAvailable);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code() == ErrorCode::kNotAvailable);
    CHECK(has(refused.error().msg(), dir.abs(wrong)));
  }
  auto followed = ipoib::list_directory_if_exists(AT_FDCWD, dir.abs("link"), ErrorCode::kIoFailure,
                                                  FollowSymlinks::kYes);
  REQUIRE(followed.ok());
  REQUIRE(followed->has_value());
  CHECK(**followed == std::vector<std::string>{"x"});
  // Relative to dir_fd.
  auto d = ipoib::open_checked(AT_FDCWD, dir.path(), O_RDONLY, FileType::kDirectory);
  REQUIRE(d.ok());
  auto relative = ipoib::list_directory_if_exists(d->get(), "d");
  REQUIRE(relative.ok());
  REQUIRE(relative->has_value());
  CHECK(**relative == std::vector<std::string>{"x"});
}
