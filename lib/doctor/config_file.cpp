// --config: take master/pkey/mode/mtu and the store from the network config the cluster actually
// uses, read by the plugin's own reader (plugin/network_file.h): the doctor accepts and refuses
// exactly the files `ipoib validate-config` accepts and refuses.
#include "ipoib/ib/sysfs_file.h"
#include "ipoib/plugin/network_file.h"
#include "lib/doctor/internal.h"

namespace ipoib::doctor {
namespace detail {

ipam::ConfigSources config_sources(const Roots& roots) {
  ipam::ConfigSources sources;
  for (std::string& path : sources.flat_file_paths) {
    path = detail::under(roots.host, path);
  }
  return sources;
}

}  // namespace detail

Status apply_config_file(const std::string& path, DoctorOptions& options) {
  auto text = ib::read_text_file(path);
  if (!text.ok()) {
    return std::move(text).error().with_context("--config");
  }
  auto entries = plugin::read_network_file(*text, detail::config_sources(options.roots));
  if (!entries.ok()) {
    return std::move(entries).error().with_context("--config " + path);
  }
  const plugin::NetworkEntry* ipoib = nullptr;
  for (const plugin::NetworkEntry& entry : *entries) {
    if (entry.ipoib) {
      ipoib = &entry;
      break;
    }
  }
  if (ipoib == nullptr) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "--config " + path + ": no plugin of type \"ipoib\" in it");
  }
  const plugin::IpoibConfig& cfg = *ipoib->ipoib;
  if (!options.master) {
    options.master = cfg.master;
  }
  if (!options.pkey && cfg.pkey) {
    options.pkey = cfg.pkey;
  }
  if (!options.mode && cfg.mode) {
    options.mode = std::string(plugin::to_string(*cfg.mode));
  }
  if (!options.mtu && cfg.mtu_bytes) {
    options.mtu = cfg.mtu_bytes;
  }
  if (ipoib->ipam) {
    if (options.store_dir.empty()) {
      options.store_dir = ipoib->ipam->location.store_dir;
    }
    if (!options.network_name) {
      options.network_name = ipoib->ipam->location.network_name;
    }
    if (!options.ipam_location) {
      options.ipam_location = ipoib->ipam->location;
    }
  }
  return ok_status();
}

}  // namespace ipoib::doctor
