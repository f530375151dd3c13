#include "ipoib/cni/config.h"

#include <string>

#include "ipoib/cni/env.h"

namespace ipoib::cni {
namespace {

using nlohmann::json;

// Deep enough for any real config (a conflist with IPAM ranges nests about 6 levels), shallow
// enough that the recursive code that walks a document (dump, our decoders) is safe on hostile
// input.
constexpr int kMaxJsonDepth = 64;

// Returns the deepest '['/'{' nesting of `text`, ignoring brackets inside strings. Runs before
// the parser so no recursive walk ever sees a deeper document.
int max_nesting(std::string_view text) {
  int depth = 0;
  int max = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > max) {
          max = depth;
        }
        break;
      case ']':
      case '}':
        --depth;
        break;
      default:
        break;
    }
  }
  return max;
}

Error config_decode_error(const std::string& field, std::string_view problem) {
  return Error(ErrorCode::kDecodeFailure, "network config: " + field + ": " + std::string(problem));
}

// The highest supported entry of a "cniVersions" list (libcni 1.2+ conflists).
Result<std::optional<CniVersion>> highest_listed(const json& list) {
  if (!list.is_array()) {
    return config_decode_error("cniVersions", "must be an array of strings");
  }
  std::optional<CniVersion> best;
  for (const auto& e : list) {
    if (!e.is_string()) {
      return config_decode_error("cniVersions", "must be an array of strings");
    }
    auto v = parse_version(e.get<std::string>());
    if (v.ok() && (!best || *v > *best)) {
      best = *v;
    }
  }
  return best;
}

struct PickedVersion {
  CniVersion version;
  std::string text;
};

Result<PickedVersion> pick_version(const json& doc) {
  const auto it = doc.find("cniVersion");
  if (it != doc.end() && !it->is_null()) {
    if (!it->is_string()) {
      return config_decode_error("cniVersion", "must be a string");
    }
    const std::string text = it->get<std::string>();
    if (!text.empty()) {
      IPOIB_TRY_ASSIGN(CniVersion v, parse_version(text));
      return PickedVersion{v, text};
    }
  }
  if (const auto list = doc.find("cniVersions"); list != doc.end() && !list->is_null()) {
    IPOIB_TRY_ASSIGN(std::optional<CniVersion> best, highest_listed(*list));
    if (!best) {
      return Error(ErrorCode::kIncompatibleVersion,
                   "incompatible CNI versions: no entry of cniVersions is supported; plugin "
                   "supports " +
                       supported_versions_text(),
                   supported_versions_text());
    }
    return PickedVersion{*best, ""};
  }
  // SPEC.md: a configuration without cniVersion is 0.1.0 (libcni's ConfigDecoder agrees).
  return PickedVersion{CniVersion::k0_1_0, ""};
}

Result<json> get_object(const json& doc, const char* key, const char* field) {
  const auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) {
    return json::object();
  }
  if (!it->is_object()) {
    return config_decode_error(field, "must be an object");
  }
  return *it;
}

}  // namespace

std::string dump_json(const nlohmann::json& doc) {
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<nlohmann::json> parse_json(std::string_view text, std::string_view what) {
  const std::string prefix = std::string(what) + ": ";
  if (max_nesting(text) > kMaxJsonDepth) {
    return Error(ErrorCode::kDecodeFailure,
                 prefix + "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    return Error(ErrorCode::kDecodeFailure, prefix + "invalid JSON: " + e.what());
  } catch (const std::exception& e) {  // bad_alloc on absurd input
    return Error(ErrorCode::kDecodeFailure, prefix + "cannot parse: " + e.what());
  }
}

std::optional<CniVersion> sniff_version(std::string_view text) {
  auto doc = parse_json(text, "config");
  if (!doc.ok() || !doc->is_object()) {
    return std::nullopt;
  }
  const auto it = doc->find("cniVersion");
  if (it != doc->end() && it->is_string()) {
    auto v = parse_version(it->get<std::string>());
    if (v.ok()) {
      return *v;
    }
    if (!it->get<std::string>().empty()) {
      return std::nullopt;
    }
  }
  if (const auto list = doc->find("cniVersions"); list != doc->end()) {
    auto best = highest_listed(*list);
    if (best.ok()) {
      return *best;
    }
  }
  return std::nullopt;
}

Result<NetConf> parse_netconf(std::string_view text, PrevResult prev_policy) {
  IPOIB_TRY_ASSIGN(json doc, parse_json(text, "network config"));
  if (!doc.is_object()) {
    return Error(ErrorCode::kDecodeFailure, "network config: must be a JSON object");
  }
  NetConf conf;
  IPOIB_TRY_ASSIGN(PickedVersion picked, pick_version(doc));
  conf.version = picked.version;
  conf.version_text = picked.text;

  // libcni skel validateConfig: missing -> 7, wrong type -> 6, bad characters -> 7.
  const auto name = doc.find("name");
  if (name == doc.end() || name->is_null()) {
    return Error(ErrorCode::kInvalidNetworkConfig, "missing network name");
  }
  if (!name->is_string()) {
    return config_decode_error("name", "must be a string");
  }
  conf.name = name->get<std::string>();
  if (conf.name.empty()) {
    return Error(ErrorCode::kInvalidNetworkConfig, "missing network name");
  }
  if (!is_valid_identifier(conf.name)) {
    return Error(ErrorCode::kInvalidNetworkConfig, "invalid characters found in network name",
                 conf.name.substr(0, 256));
  }

  if (const auto type = doc.find("type"); type != doc.end() && !type->is_null()) {
    if (!type->is_string()) {
      return config_decode_error("type", "must be a string");
    }
    conf.type = type->get<std::string>();
  }

  IPOIB_TRY_ASSIGN(conf.capabilities, get_object(doc, "capabilities", "capabilities"));
  for (const auto& [key, value] : conf.capabilities.items()) {
    if (!value.is_boolean()) {
      return config_decode_error("capabilities." + key, "must be true or false");
    }
  }
  // libcni only passes the runtimeConfig keys whose capability the config declares true; a
  // hand-fed config may carry others, which the plugin must not act on (SPEC.md, "Deriving
  // runtimeConfig").
  IPOIB_TRY_ASSIGN(json runtime_config, get_object(doc, "runtimeConfig", "runtimeConfig"));
  for (auto& [key, value] : runtime_config.items()) {
    const auto cap = conf.capabilities.find(key);
    if (cap != conf.capabilities.end() && *cap == true) {
      conf.runtime_config[key] = value;
    }
  }

  IPOIB_TRY_ASSIGN(json args, get_object(doc, "args", "args"));
  IPOIB_TRY_ASSIGN(conf.args_cni, get_object(args, "cni", "args.cni"));

  if (const auto prev = doc.find("prevResult"); prev != doc.end() && !prev->is_null()) {
    auto decoded = decode_result(*prev, conf.version);
    if (decoded.ok()) {
      conf.prev_result = std::move(decoded).value();
    } else if (prev_policy == PrevResult::kTolerate) {
      conf.prev_result_problem = decoded.error().msg();
    } else {
      return std::move(decoded).error().with_context("prevResult");
    }
  }

  conf.raw = std::move(doc);
  return conf;
}

}  // namespace ipoib::cni
