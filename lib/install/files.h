// lib/install/files.h — the filesystem primitives `ipoib install` is built from (internal).
// Every write goes to a temporary file in the destination's directory, is fsync'ed, chmod'ed,
// then rename(2)d over the destination, and the directory is fsync'ed.
#pragma once

#include <sys/stat.h>

#include <optional>
#include <string>

#include "ipoib/base/error.h"
#include "ipoib/base/fd.h"

namespace ipoib::install::detail {

// lstat(2); nullopt when the path does not exist.
std::optional<struct stat> lstat_path(const std::string& path);

bool same_inode(const struct stat& a, const struct stat& b);

// Whether the regular file at `path` has exactly the bytes of `fd` (read with pread).
Result<bool> same_bytes(const std::string& path, const Fd& fd);
// Whether the regular file at `path` holds exactly `text`.
Result<bool> holds_text(const std::string& path, std::string_view text);

// Whether the file at `path` is an ELF executable that carries `marker`.
Result<bool> elf_with_marker(const std::string& path, std::string_view marker);

// mkdir -p with `mode` for the directories it creates.
Status make_dirs(const std::string& dir, mode_t mode);

// The whole content of `src` (from offset 0) becomes `dest`, with `mode`, by rename(2).
Status atomic_copy(const Fd& src, const std::string& dest, mode_t mode);
// `text` becomes `dest`, with `mode`, by rename(2).
Status atomic_write(std::string_view text, const std::string& dest, mode_t mode);
// `dest` becomes a hard link to `target` (same directory) by rename(2). Fails, changing nothing,
// when the filesystem refuses the link.
Status atomic_link(const std::string& target, const std::string& dest);

// unlink(2); a missing file is success. Syncs the directory.
Status remove_file(const std::string& path);

std::string dir_name(const std::string& path);
std::string base_name(const std::string& path);

}  // namespace ipoib::install::detail
