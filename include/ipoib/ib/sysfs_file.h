// ipoib/ib/sysfs_file.h — reading small pseudo-files (sysfs, procfs) and listing directories.
//
//   IPOIB_TRY_ASSIGN(std::string state,
//   ib::read_trimmed("/sys/class/infiniband/mlx5_0/ports/1/state")); IPOIB_TRY_ASSIGN(auto names,
//   ib::list_directory("/sys/class/net"));
//
// Pseudo-files report their size as 4096 or 0, so they are read to EOF with a cap, never stat'ed.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"

namespace ipoib::ib {

// Whole file (base/file.h read_file, following symlinks; a FIFO, socket or device is refused).
// More than `max_bytes` is an error. ENOENT/ENOTDIR -> kNotAvailable; other errors -> kIoFailure.
Result<std::string> read_text_file(const std::string& path, std::size_t max_bytes = 1 << 20);

// As read_text_file, with surrounding whitespace (the trailing newline) removed.
Result<std::string> read_trimmed(const std::string& path);

// Entry names except "." and "..", sorted (base/file.h list_directory_if_exists, following
// symlinks). Missing -> kNotAvailable; other errors -> kIoFailure.
Result<std::vector<std::string>> list_directory(const std::string& path);

enum class PathKind { kMissing, kFile, kDirectory, kOther };
// Follows symlinks (sysfs links such as device/ are symlinks).
PathKind path_kind(const std::string& path);

}  // namespace ipoib::ib
