#include "ipoib/plugin/network_file.h"

#include <cstdint>

#include "ipoib/base/strings.h"
#include "ipoib/cni/network_attachment.h"

namespace ipoib::plugin {
namespace {

std::string place(const std::string& where, const std::string& inner) {
  return where.empty() ? inner : where + " " + inner;
}

// One plugin configuration, validated as ADD would validate it.
Result<NetworkEntry> read_plugin(const std::string& text, const std::string& where,
                                 const ipam::ConfigSources& sources) {
  NetworkEntry entry;
  entry.where = where;
  IPOIB_TRY_ASSIGN(entry.conf, cni::parse_netconf(text));
  if (entry.conf.type != "ipoib") {
    return entry;
  }
  // What every verb but DEL checks first, with ADD's messages.
  IPOIB_TRY_ASSIGN(entry.ipoib, validate_network_config(entry.conf, sources));
  if (entry.ipoib->ipam.kind == IpamKind::kBuiltin) {
    // Validated above; parsed again for what validate_network_config does not return (the
    // ranges and the store location).
    auto ipam = ipam::load_ipam_config(entry.conf.raw["ipam"], sources);
    if (!ipam.ok()) {
      return std::move(ipam).error().with_context("ipam");
    }
    entry.ipam = std::move(*ipam);
  }
  return entry;
}

Result<std::vector<NetworkEntry>> read_doc(const nlohmann::json& doc, const std::string& text,
                                           const std::string& where,
                                           const ipam::ConfigSources& sources) {
  if (!doc.is_object()) {
    return Error(ErrorCode::kDecodeFailure, "not a JSON object");
  }
  std::vector<NetworkEntry> out;
  const auto plugins = doc.find("plugins");
  if (plugins == doc.end()) {
    IPOIB_TRY_ASSIGN(NetworkEntry entry, read_plugin(text, where, sources));
    out.push_back(std::move(entry));
    return out;
  }
  if (!plugins->is_array() || plugins->empty()) {
    return Error(ErrorCode::kInvalidNetworkConfig, "plugins: must be a non-empty array");
  }
  // Each plugin runs with the list's name and cniVersion (libcni buildOneConfig).
  for (std::size_t i = 0; i < plugins->size(); ++i) {
    const std::string at = place(where, "plugins[" + std::to_string(i) + "]");
    nlohmann::json one = (*plugins)[i];
    if (!one.is_object()) {
      return Error(ErrorCode::kInvalidNetworkConfig, at + ": not an object");
    }
    one["name"] = doc.value("name", nlohmann::json());
    if (doc.contains("cniVersion")) {
      one["cniVersion"] = doc["cniVersion"];
    }
    auto entry = read_plugin(one.dump(), at, sources);
    if (!entry.ok()) {
      return std::move(entry).error().with_context(at);
    }
    out.push_back(std::move(*entry));
  }
  return out;
}

Result<std::vector<NetworkEntry>> read_json(const std::string& text, const std::string& where,
                                            const ipam::ConfigSources& sources) {
  auto doc = cni::parse_json(text, where.empty() ? "config" : where);
  if (!doc.ok()) {
    return std::move(doc).error();
  }
  auto entries = read_doc(*doc, text, where, sources);
  if (!entries.ok() && !where.empty() && !starts_with(entries.error().msg(), where)) {
    return std::move(entries).error().with_context(where);
  }
  return entries;
}

}  // namespace

Result<std::vector<NetworkEntry>> read_network_file(std::string_view text,
                                                    const ipam::ConfigSources& sources) {
  IPOIB_TRY_ASSIGN(std::vector<cni::NetworkConfigText> configs, cni::network_config_texts(text));
  std::vector<NetworkEntry> out;
  for (const cni::NetworkConfigText& config : configs) {
    IPOIB_TRY_ASSIGN(std::vector<NetworkEntry> entries,
                     read_json(config.text, config.where, sources));
    for (NetworkEntry& entry : entries) {
      out.push_back(std::move(entry));
    }
  }
  return out;
}

}  // namespace ipoib::plugin
