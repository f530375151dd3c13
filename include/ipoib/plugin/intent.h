// ipoib/plugin/intent.h — the record an ADD makes before it creates a child, so that an
// untagged child (an ADD killed between RTM_NEWLINK and the tag) can be proved ours later.
//
//   IntentDirectory intents(IntentDirectory::kDefaultPath);           // /run/ipoib-cni
//   IPOIB_TRY(intents.record(tmp, {"ibnet", {"4f2a", "net1"}}));       // written, renamed into
//   place
//   ... RTM_NEWLINK tmp ..., tag it ...
//   intents.remove(tmp);                                              // the tag proves it now
//   // DEL, GC, a retried ADD: an untagged child named tmp is ours only when this says so
//   std::optional<ChildOwner> owner = intents.lookup(tmp);
//
// One file per temporary child name, holding {"network","containerID","ifname"}. The directory
// must be a real directory owned by this user and writable by nobody else (0700 when created):
// anyone who could plant a file there could make DEL or GC delete a link of their choosing. An
// untrusted directory is refused by record() and reads as empty for lookup().
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "ipoib/base/error.h"
#include "ipoib/plugin/tag.h"

namespace ipoib::plugin {

class IntentDirectory {
 public:
  static constexpr std::string_view kDefaultPath = "/run/ipoib-cni";

  explicit IntentDirectory(std::string path) : path_(std::move(path)) {}

  [[nodiscard]] const std::string& path() const { return path_; }

  // Records that `temporary_name` is about to be created for `owner` (whose network is set):
  // creates the directory (0700) when missing, writes the file through a temporary and renames
  // it into place (atomic for every other process; not fsynced: it must outlive this process,
  // not the machine, like the links it speaks for). kIoFailure naming the path, including when
  // the directory is not trustworthy (saying how to fix it).
  [[nodiscard]] Status record(std::string_view temporary_name, const ChildOwner& owner) const;

  // The intent recorded for `temporary_name`; nullopt when there is none, when it is malformed,
  // or when the directory or the file is not trustworthy (never a reason to delete).
  [[nodiscard]] std::optional<ChildOwner> lookup(std::string_view temporary_name) const;

  // Removes the intent of `temporary_name` (success when there is none).
  [[nodiscard]] Status remove(std::string_view temporary_name) const;

 private:
  std::string path_;
};

// Whether `path` is a directory this process may trust for intents: not a symlink, owned by the
// effective user, not writable by group or others. The reason when not ("" when it is).
std::string untrusted_directory_reason(const std::string& path);

}  // namespace ipoib::plugin
