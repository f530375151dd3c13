// `ipoib validate-config FILE`: the configuration checks of ADD, without a kernel.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "ipoib/base/strings.h"
#include "ipoib/cni/config.h"
#include "ipoib/ipam/config.h"
#include "ipoib/plugin/config.h"
#include "ipoib/plugin/ipoib_plugin.h"

namespace ipoib::plugin {
namespace {

// One network config of type "ipoib" (or any other type: only the CNI keys are checked then).
Result<std::string> validate_netconf_text(const std::string& text) {
  IPOIB_TRY_ASSIGN(cni::NetConf conf, cni::parse_netconf(text));
  if (conf.type != "ipoib") {
    return "network \"" + conf.name + "\": type \"" + conf.type + "\" (not checked)";
  }
  IPOIB_TRY_ASSIGN(IpoibConfig cfg, parse_ipoib_config(conf));
  if (cfg.ipam.kind == IpamKind::kBuiltin) {
    // The built-in IPAM's own validation (ranges, exclusions, store_dir) as ADD would run it.
    auto ipam = ipam::load_ipam_config(conf.raw["ipam"], ipam::ConfigSources{});
    if (!ipam.ok()) {
      return std::move(ipam).error().with_context("ipam");
    }
  }
  std::string summary = "network \"" + conf.name + "\": master " + cfg.master;
  summary += cfg.pkey ? " pkey " + format_pkey(*cfg.pkey) : " pkey (parent's)";
  summary += cfg.mode ? " mode " + std::string(to_string(*cfg.mode)) : " mode (parent's)";
  summary += cfg.mtu_bytes ? " mtu " + std::to_string(*cfg.mtu_bytes) : " mtu (parent's)";
  summary += cfg.ipam.kind == IpamKind::kNone      ? " ipam none (layer 2)"
             : cfg.ipam.kind == IpamKind::kBuiltin ? " ipam " + cfg.ipam.type + " (built in)"
                                                   : " ipam " + cfg.ipam.type + " (delegated)";
  return summary;
}

// The spec.config string of a YAML NetworkAttachmentDefinition: `config: '<json>'` (single
// quotes, '' escapes), `config: "<json>"` (no escapes beyond \" and \\) or `config: |` block.
// Enough for the shapes kubectl and the examples use; anything else is reported as such.
Result<std::string> yaml_nad_config(const std::string& text) {
  const auto key = text.find("config:");
  if (key == std::string::npos) {
    return Error(ErrorCode::kDecodeFailure, "neither JSON nor a YAML NAD with spec.config");
  }
  std::size_t i = key + 7;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) {
    ++i;
  }
  std::string out;
  if (i < text.size() && (text[i] == '\'' || text[i] == '"')) {
    const char quote = text[i++];
    for (; i < text.size(); ++i) {
      if (quote == '\'' && text[i] == '\'') {
        if (i + 1 < text.size() && text[i + 1] == '\'') {
          out += '\'';
          ++i;
          continue;
        }
        return out;
      }
      if (quote == '"' && text[i] == '\\' && i + 1 < text.size()) {
        out += text[++i];
        continue;
      }
      if (quote == '"' && text[i] == '"') {
        return out;
      }
      out += text[i];
    }
    return Error(ErrorCode::kDecodeFailure, "spec.config: unterminated string");
  }
  if (i < text.size() && text[i] == '|') {
    // Block scalar: the following lines indented more than the `config:` line.
    const auto line_start = text.rfind('\n', key);
    const std::size_t key_indent = key - (line_start == std::string::npos ? 0 : line_start + 1);
    auto pos = text.find('\n', i);
    while (pos != std::string::npos && pos + 1 < text.size()) {
      const auto next = text.find('\n', pos + 1);
      const std::string line =
          text.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
      const auto indent = line.find_first_not_of(' ');
      if (indent != std::string::npos && indent <= key_indent) {
        break;
      }
      out += line + "\n";
      pos = next;
    }
    return out;
  }
  return Error(ErrorCode::kDecodeFailure, "spec.config: expected a quoted or block string");
}

Result<std::vector<std::string>> validate_text(const std::string& text) {
  std::vector<std::string> lines;
  auto doc = cni::parse_json(text, "config");
  if (!doc.ok()) {
    IPOIB_TRY_ASSIGN(std::string inner, yaml_nad_config(text));
    IPOIB_TRY_ASSIGN(std::string line, validate_netconf_text(inner));
    lines.push_back(std::move(line));
    return lines;
  }
  if (!doc->is_object()) {
    return Error(ErrorCode::kDecodeFailure, "config: not a JSON object");
  }
  if (doc->value("kind", std::string()) == "NetworkAttachmentDefinition") {
    const auto spec = doc->find("spec");
    if (spec == doc->end() || !spec->is_object() || !spec->contains("config") ||
        !(*spec)["config"].is_string()) {
      return Error(ErrorCode::kInvalidNetworkConfig, "spec.config: missing or not a string");
    }
    IPOIB_TRY_ASSIGN(std::string line, validate_netconf_text((*spec)["config"].get<std::string>()));
    lines.push_back(std::move(line));
    return lines;
  }
  if (const auto plugins = doc->find("plugins"); plugins != doc->end()) {
    if (!plugins->is_array()) {
      return Error(ErrorCode::kInvalidNetworkConfig, "plugins: must be an array");
    }
    // Each plugin runs with the list's name and cniVersion (libcni buildOneConfig).
    for (std::size_t i = 0; i < plugins->size(); ++i) {
      nlohmann::json one = (*plugins)[i];
      if (!one.is_object()) {
        return Error(ErrorCode::kInvalidNetworkConfig,
                     "plugins[" + std::to_string(i) + "]: not an object");
      }
      one["name"] = doc->value("name", nlohmann::json());
      if (doc->contains("cniVersion")) {
        one["cniVersion"] = (*doc)["cniVersion"];
      }
      auto line = validate_netconf_text(one.dump());
      if (!line.ok()) {
        return std::move(line).error().with_context("plugins[" + std::to_string(i) + "]");
      }
      lines.push_back(std::move(*line));
    }
    return lines;
  }
  IPOIB_TRY_ASSIGN(std::string line, validate_netconf_text(text));
  lines.push_back(std::move(line));
  return lines;
}

}  // namespace

int validate_config_main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: ipoib validate-config FILE   (\"-\" reads stdin)\n");
    return 2;
  }
  const std::string path = argv[1];
  std::stringstream buffer;
  if (path == "-") {
    buffer << std::cin.rdbuf();
  } else {
    std::ifstream in(path);
    if (!in) {
      std::fprintf(stderr, "validate-config: cannot read %s\n", path.c_str());
      return 2;
    }
    buffer << in.rdbuf();
  }
  auto lines = validate_text(buffer.str());
  if (!lines.ok()) {
    std::printf("invalid: %s (code %d)\n", lines.error().msg().c_str(),
                static_cast<int>(lines.error().code()));
    return 1;
  }
  for (const auto& line : *lines) {
    std::printf("ok: %s\n", line.c_str());
  }
  return 0;
}

}  // namespace ipoib::plugin
