// ipoib/plugin/network_file.h — every network configuration in a file an administrator has, checked
// as ADD would check it: a CNI .conf, a .conflist, or a NetworkAttachmentDefinition as JSON or
// YAML (found by cni::network_config_texts, ipoib/cni/network_attachment.h, which `ipoib ipam
// list|release|import --config` read too).
//
// The one reader behind `ipoib validate-config FILE` and `ipoib doctor --config FILE`, so both
// accept and refuse the same files with the same message.
//
//   IPOIB_TRY_ASSIGN(std::vector<NetworkEntry> nets, read_network_file(text, ConfigSources{}));
//   nets[0].where;            // "spec.config plugins[0]"
//   nets[0].ipoib->master;    // set when the plugin is of type "ipoib"
//   nets[0].ipam->ranges;     // set when that plugin uses the built-in IPAM
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/cni/config.h"
#include "ipoib/ipam/config.h"
#include "ipoib/plugin/config.h"

namespace ipoib::plugin {

// One plugin configuration as the runtime would hand it to the plugin.
struct NetworkEntry {
  // Where it came from in the file: "" (a .conf), "plugins[1]", "spec.config",
  // "document 2 spec.config plugins[0]".
  std::string where;
  cni::NetConf conf;
  std::optional<IpoibConfig> ipoib;      // when conf.type is "ipoib"
  std::optional<ipam::IpamConfig> ipam;  // when that ipoib plugin uses the built-in IPAM
};

// Every plugin configuration in `text` (each config cni::network_config_texts finds), each
// validated by cni::parse_netconf, and for type "ipoib" by validate_network_config (the plugin
// keys and the built-in IPAM's section, as every verb but DEL checks them; the flat file is
// searched in `sources`). A conflist's plugins get the list's name and cniVersion (libcni
// buildOneConfig). The first problem refuses the whole file: network_config_texts' error, else
// the parsers' code, with `where` as context.
Result<std::vector<NetworkEntry>> read_network_file(std::string_view text,
                                                    const ipam::ConfigSources& sources);

// Where a network's reservations live, and so how far its addresses are unique (what
// `ipoib validate-config` prints for every network).
enum class StoreScope {
  kLocal,   // a node-local directory: unique on this node only
  kShared,  // store_dir on a filesystem shared between hosts (NFS, Lustre, GPFS, CephFS, ...)
};
std::string_view to_string(StoreScope scope);  // "local", "shared"

// The filesystem that holds (or would hold, once the first ADD creates it) a directory.
struct FilesystemInfo {
  std::string path;         // the directory itself, or its nearest existing ancestor
  std::uint64_t magic = 0;  // statfs(2) f_type
};
// statfs of `dir` or its nearest existing ancestor; nullopt when not even "/" answers.
using FilesystemProbe = std::function<std::optional<FilesystemInfo>(const std::string& dir)>;
FilesystemProbe statfs_probe();

// Whether a statfs f_type names a filesystem shared between hosts whose fcntl locks hold across
// them (the store's cross-host exclusion), and its name: {"nfs", true}, {"ext4", false}.
struct FilesystemKind {
  std::string name;  // "nfs", "lustre", "ext4", ... or "0x1234abcd" when unknown
  bool shared = false;
};
FilesystemKind classify_filesystem(std::uint64_t magic);

// The lines `ipoib validate-config` prints under a network: its ranges ("range 10.0.0.0/24:
// 10.0.0.1-10.0.0.254, 254 addresses") and its store ("store local: ..."), then the IPAM
// parser's notes. Empty for a plugin of another type or without IPAM.
std::vector<std::string> describe_network(const NetworkEntry& entry, const FilesystemProbe& probe);

}  // namespace ipoib::plugin
