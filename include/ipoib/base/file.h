// ipoib/base/file.h — opening, reading, writing, publishing and listing files without blocking
// on whatever a hostile path names.
//
// Every path from a config, the environment or a store directory goes through open_checked:
// it opens non-blocking (so a FIFO, socket or device cannot hang the plugin), refuses anything
// that is not the expected type with a message naming the path and what it is, and returns an
// owned, close-on-exec Fd.
//
//   IPOIB_TRY_ASSIGN(std::string text, read_file(AT_FDCWD, path, 1 << 20,
//                                                ErrorCode::kInvalidNetworkConfig));
//   IPOIB_TRY(publish_file(dir_fd.get(), dir, "pool.json", bytes, 0600));
//   IPOIB_TRY_ASSIGN(std::vector<std::string> names, list_directory(dir_fd.get(), dir));
//   IPOIB_TRY_ASSIGN(auto maybe_names, list_directory_if_exists(AT_FDCWD, "/etc/cni/net.d"));
#pragma once

#include <fcntl.h>
#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/base/fd.h"

namespace ipoib {

enum class FileType { kRegular, kDirectory };
enum class FollowSymlinks { kNo, kYes };

// What st_mode names, for messages: "regular file", "directory", "FIFO", "socket",
// "character device", "block device", "symbolic link".
std::string_view file_kind_name(mode_t st_mode);

// Opens `path` (relative to dir_fd; AT_FDCWD for absolute or cwd-relative) with
// flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK (| O_NOFOLLOW unless kYes; | O_DIRECTORY for
// kDirectory), fstat()s it, and refuses anything that is not `type` (a FIFO, socket, device,
// symlink, ...) with `code`, naming the path and what it is ("... is a FIFO, not a regular
// file"). Clears O_NONBLOCK again on success.
// A FIFO opened this way never blocks: open(2) with O_NONBLOCK returns at once for O_RDONLY, and
// fails with ENXIO for O_WRONLY without a reader, which is reported as "is a FIFO" too (the same
// for a socket, which open(2) always refuses with ENXIO). `create_mode` applies with O_CREAT.
Result<Fd> open_checked(int dir_fd, const std::string& path, int flags, FileType type,
                        ErrorCode code = ErrorCode::kIoFailure, mode_t create_mode = 0600,
                        FollowSymlinks follow = FollowSymlinks::kNo);

// Reads the whole file (EINTR-safe); more than max_bytes is an error naming the path.
Result<std::string> read_all(int fd, const std::string& path_for_errors, std::size_t max_bytes);

// A file's bytes: read into memory (a std::string, also what tests hand in), or mapped from the
// page cache by map_or_read_all. Movable; the bytes' address does not change when it moves.
class FileBytes {
 public:
  FileBytes() = default;
  FileBytes(std::string text);  // NOLINT(google-explicit-constructor): bytes read or built
  FileBytes(FileBytes&& other) noexcept;
  FileBytes& operator=(FileBytes&& other) noexcept;
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;
  ~FileBytes();

  [[nodiscard]] std::string_view view() const;
  [[nodiscard]] std::size_t size() const { return view().size(); }
  [[nodiscard]] bool empty() const { return size() == 0; }
  [[nodiscard]] bool mapped() const { return map_ != nullptr; }

 private:
  friend Result<FileBytes> map_or_read_all(int fd, const std::string& path_for_errors,
                                           std::size_t max_bytes);
  std::unique_ptr<std::string> text_;  // heap: a short string's bytes stay put on a move
  void* map_ = nullptr;
  std::size_t map_bytes_ = 0;
};

// The whole regular file `fd`, as read_all reads it, but a file of 64 KiB or more is mapped
// read-only (MAP_POPULATE) and locked in memory (mlock(2)) instead of copied: no fresh pages to
// zero and fault in, no copy, one pass over the page cache — for a pool snapshot of 10,000
// reservations (~850 KB) ~0.1 ms instead of ~0.45 ms when the caches are cold. mlock makes every
// page resident before this returns (an I/O error or a file shorter than fstat said fails the
// lock, and the file is then read instead), and keeps it so: no page is evicted and read again
// later, which is what could turn a disk error into SIGBUS. When mapping or locking is refused
// (RLIMIT_MEMLOCK without CAP_IPC_LOCK, a filesystem without mmap) the file is read.
// The caller must make sure nobody truncates the file while the bytes are alive (the IPAM store
// replaces a snapshot by rename only, and only under its lock). More than max_bytes is an error.
Result<FileBytes> map_or_read_all(int fd, const std::string& path_for_errors,
                                  std::size_t max_bytes);

// open_checked(kRegular, O_RDONLY) + read_all.
Result<std::string> read_file(int dir_fd, const std::string& path, std::size_t max_bytes,
                              ErrorCode code = ErrorCode::kIoFailure,
                              FollowSymlinks follow = FollowSymlinks::kNo);

// As read_file, but a path that does not exist (ENOENT, or ENOTDIR: a component is not a
// directory) is std::nullopt, not an error.
Result<std::optional<std::string>> read_file_if_exists(int dir_fd, const std::string& path,
                                                       std::size_t max_bytes,
                                                       ErrorCode code = ErrorCode::kIoFailure,
                                                       FollowSymlinks follow = FollowSymlinks::kNo);

// Writes all of `bytes` (EINTR-safe, short writes continued); kIoFailure naming the path.
Status write_all(int fd, std::string_view bytes, const std::string& path_for_errors);

// The temporary-file prefix publish_file uses: ".tmp.<name>.<16 hex digits>".
inline constexpr std::string_view kPublishTempPrefix = ".tmp.";

// How far publish_file makes the new bytes survive. kDurable: a crash or power loss after it
// returns keeps them (the file and the directory are fsync()ed). kAtomicOnly: readers see the old
// bytes or the new ones, never a mix, but a crash may bring the old ones back; for caches and
// hints, whose loss only costs time.
enum class Durability { kDurable, kAtomicOnly };

// Atomically makes dir/name hold `bytes`: a temporary file ".tmp.<name>.<random>" created O_EXCL
// with exactly `mode` (fchmod, so the umask does not change it) in the directory, written,
// fsync()ed (kDurable), renameat() over name, directory fsync()ed (kDurable). Errors are
// kIoFailure and name dir_path/name. On failure the temporary file is unlinked and `name` is
// unchanged — except when only the final directory fsync fails: the new bytes are then in place,
// their durability in doubt, and the error says so.
Status publish_file(int dir_fd, const std::string& dir_path, const std::string& name,
                    std::string_view bytes, mode_t mode,
                    Durability durability = Durability::kDurable);

// The names in a directory (not "." or ".."), sorted; RAII over DIR*; dir_fd is not consumed
// (a duplicate is read from its start).
Result<std::vector<std::string>> list_directory(int dir_fd, const std::string& path_for_errors);

// Opens `path` (relative to dir_fd) with open_checked(kDirectory) and lists it as above. A path
// that does not exist (ENOENT, or ENOTDIR: a component is not a directory) is std::nullopt; a
// path that is not a directory is `code`, naming it.
Result<std::optional<std::vector<std::string>>> list_directory_if_exists(
    int dir_fd, const std::string& path, ErrorCode code = ErrorCode::kIoFailure,
    FollowSymlinks follow = FollowSymlinks::kNo);

}  // namespace ipoib
