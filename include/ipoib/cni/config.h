// ipoib/cni/config.h — the network configuration a plugin reads on stdin.
//
//   IPOIB_TRY_ASSIGN(NetConf conf, parse_netconf(stdin_text));
//   conf.version;                        // negotiated CniVersion
//   conf.raw.value("master", "");        // plugin-specific keys are read from `raw`
//   conf.prev_result;                    // optional<CniResult>
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "ipoib/base/error.h"
#include "ipoib/cni/result.h"
#include "ipoib/cni/version.h"

namespace ipoib::cni {

struct NetConf {
  CniVersion version = kLatestVersion;  // what results and errors are encoded in
  std::string version_text;             // the config's "cniVersion" verbatim ("" when absent)
  std::string name;
  std::string type;
  nlohmann::json capabilities = nlohmann::json::object();
  // Only the keys whose capability is declared true (runtimeConfig filtered).
  nlohmann::json runtime_config = nlohmann::json::object();
  nlohmann::json args_cni = nlohmann::json::object();  // "args": {"cni": {...}}
  std::optional<CniResult> prev_result;
  // Set instead of failing when a malformed prevResult was tolerated (PrevResult::kTolerate):
  // what was wrong with it, for the log.
  std::string prev_result_problem;
  nlohmann::json raw;  // the whole document, for plugin-specific keys
};

// Parses stdin. Errors: not JSON / not an object -> kDecodeFailure; "cniVersion" (or the highest
// supported entry of "cniVersions" when cniVersion is absent) unsupported -> kIncompatibleVersion
// with the supported list in details; missing or invalid "name" -> kInvalidNetworkConfig;
// malformed prevResult -> kDecodeFailure. An absent cniVersion means 0.1.0 (spec). Unknown keys
// (deviceID, pciBusID, ...) are ignored. Nesting deeper than 64 levels -> kDecodeFailure.
// A known key of the wrong JSON type (name, type, cniVersion(s), capabilities, runtimeConfig,
// args, args.cni) -> kDecodeFailure naming it, as Go's json.Unmarshal fails in libcni's skel;
// null counts as absent.
// How a malformed prevResult is treated. DEL tolerates it: a teardown blocked by a runtime's
// bad cache entry would leak the attachment (Multus fails the pod's DEL on any delegate error).
enum class PrevResult { kStrict, kTolerate };
Result<NetConf> parse_netconf(std::string_view text, PrevResult prev = PrevResult::kStrict);

// Parses just enough to pick the version for encoding an error: the config's cniVersion when it
// is readable and supported, else nullopt.
std::optional<CniVersion> sniff_version(std::string_view text);

// Parses JSON text with a depth limit; never throws. kDecodeFailure on failure.
Result<nlohmann::json> parse_json(std::string_view text, std::string_view what);

// Compact text of a document, never throwing: bytes that are not UTF-8 (an environment value, a
// user name quoted in a message) are replaced, so the text stays valid JSON. What the plugin
// prints and what the cluster store writes to etcd.
std::string dump_json(const nlohmann::json& doc);

}  // namespace ipoib::cni
