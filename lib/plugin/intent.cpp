#include "ipoib/plugin/intent.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "ipoib/base/errno_error.h"
#include "ipoib/base/fd.h"
#include "ipoib/base/file.h"
#include "ipoib/cni/config.h"
#include "ipoib/cni/env.h"

namespace ipoib::plugin {
namespace {

// An intent is a few dozen bytes; anything bigger was not written by us.
constexpr std::size_t kMaxIntentBytes = 4096;

// Link names are the file names: no '/', and never "." or ".." or a hidden file.
bool usable_name(std::string_view name) {
  return cni::is_valid_ifname(name) && name.front() != '.';
}

Error intent_error(const std::string& path, std::string_view what) {
  return Error(ErrorCode::kIoFailure, "intent directory " + path + ": " + std::string(what));
}

}  // namespace

std::string untrusted_directory_reason(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return std::string("cannot be examined: ") + std::strerror(errno);
  }
  if (S_ISLNK(st.st_mode)) {
    return "is a symbolic link (use a real directory)";
  }
  if (!S_ISDIR(st.st_mode)) {
    return "is not a directory";
  }
  if (st.st_uid != ::geteuid()) {
    return "is owned by uid " + std::to_string(st.st_uid) + ", not " + std::to_string(::geteuid()) +
           " (chown it, or remove it to have it created)";
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return "is writable by group or others (chmod 0700 " + path + ")";
  }
  return "";
}

Status IntentDirectory::record(std::string_view temporary_name, const ChildOwner& owner) const {
  const std::string name(temporary_name);
  if (!usable_name(name) || !owner.network) {
    return Error(ErrorCode::kInternal, "intent for \"" + name + "\" without a usable name/network");
  }
  if (::mkdir(path_.c_str(), 0700) != 0 && errno != EEXIST) {
    return errno_error(ErrorCode::kIoFailure, "create intent directory " + path_);
  }
  if (const std::string why = untrusted_directory_reason(path_); !why.empty()) {
    return intent_error(path_, why);
  }
  const nlohmann::json doc = {{"network", *owner.network},
                              {"containerID", owner.attachment.container_id},
                              {"ifname", owner.attachment.ifname}};
  const std::string final_path = path_ + "/" + name;
  const std::string tmp_path = path_ + "/." + name + ".tmp";
  {
    Fd fd(::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid()) {
      return errno_error(ErrorCode::kIoFailure, "create " + tmp_path);
    }
    // No fsync, of the file or the directory: an intent has to outlive the plugin process (a
    // kill between create and tag), which the page cache guarantees, not the machine. The links
    // it speaks for do not survive a reboot, and /run is a tmpfs emptied at boot; an intent lost
    // to a machine crash would only leave a link unproven, i.e. kept.
    IPOIB_TRY(write_all(fd.get(), cni::dump_json(doc) + "\n", tmp_path));
  }
  if (::rename(tmp_path.c_str(), final_path.c_str()) != 0) {
    const Error e = errno_error(ErrorCode::kIoFailure, "rename " + tmp_path);
    ::unlink(tmp_path.c_str());
    return e;
  }
  return ok_status();
}

std::optional<ChildOwner> IntentDirectory::lookup(std::string_view temporary_name) const {
  const std::string name(temporary_name);
  if (!usable_name(name) || !untrusted_directory_reason(path_).empty()) {
    return std::nullopt;
  }
  const std::string file = path_ + "/" + name;
  // Non-blocking and no symlinks (open_checked): a FIFO or a link planted under that name proves
  // nothing; neither does a file someone else owns.
  auto fd = open_checked(AT_FDCWD, file, O_RDONLY, FileType::kRegular);
  struct stat st {};
  if (!fd || ::fstat(fd->get(), &st) != 0 || st.st_uid != ::geteuid()) {
    return std::nullopt;
  }
  auto text = read_all(fd->get(), file, kMaxIntentBytes);
  if (!text || text->empty()) {
    return std::nullopt;
  }
  const auto doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) {
    return std::nullopt;
  }
  const auto field = [&doc](const char* key) -> std::string {
    const auto it = doc.find(key);
    return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  ChildOwner owner{field("network"), {field("containerID"), field("ifname")}};
  if (!cni::is_valid_identifier(*owner.network) ||
      !cni::is_valid_identifier(owner.attachment.container_id) ||
      !cni::is_valid_ifname(owner.attachment.ifname)) {
    return std::nullopt;
  }
  return owner;
}

Status IntentDirectory::remove(std::string_view temporary_name) const {
  const std::string name(temporary_name);
  // Nothing of ours can be in a directory we would not have written to.
  if (!usable_name(name) || !untrusted_directory_reason(path_).empty()) {
    return ok_status();
  }
  // The temporary of a record() that was interrupted goes too.
  for (const std::string& file : {path_ + "/" + name, path_ + "/." + name + ".tmp"}) {
    if (::unlink(file.c_str()) != 0 && errno != ENOENT && errno != ENOTDIR) {
      return errno_error(ErrorCode::kIoFailure, "remove intent " + file);
    }
  }
  return ok_status();
}

}  // namespace ipoib::plugin
