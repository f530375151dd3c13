// --config: take master/pkey/mode/mtu from the network config the cluster actually uses.
#include <nlohmann/json.hpp>

#include "ipoib/base/strings.h"
#include "ipoib/ib/sysfs_file.h"
#include "lib/doctor/internal.h"

namespace ipoib::doctor {
namespace {

using nlohmann::json;

// The ipoib plugin's object inside a config, conflist or NAD (JSON form).
const json* find_ipoib(const json& doc) {
  if (!doc.is_object()) {
    return nullptr;
  }
  if (doc.value("type", "") == "ipoib") {
    return &doc;
  }
  if (const auto plugins = doc.find("plugins"); plugins != doc.end() && plugins->is_array()) {
    for (const json& plugin : *plugins) {
      if (plugin.is_object() && plugin.value("type", "") == "ipoib") {
        return &plugin;
      }
    }
  }
  return nullptr;
}

Status apply(const json& conf, DoctorOptions& options) {
  if (!options.master) {
    if (const auto it = conf.find("master"); it != conf.end() && it->is_string()) {
      options.master = it->get<std::string>();
    }
  }
  if (!options.pkey) {
    if (const auto it = conf.find("pkey"); it != conf.end()) {
      Result<std::uint64_t> value =
          Error(ErrorCode::kInvalidNetworkConfig, "not a number or string");
      if (it->is_string()) {
        value = parse_uint(it->get<std::string>(), 16);
      } else if (it->is_number_unsigned()) {
        value =
            it->get<std::uint64_t>() <= 0xffff
                ? Result<std::uint64_t>(it->get<std::uint64_t>())
                : Result<std::uint64_t>(Error(ErrorCode::kInvalidNetworkConfig, "above 0xffff"));
      }
      if (!value.ok()) {
        return std::move(value).error().with_context("config \"pkey\"");
      }
      options.pkey = static_cast<std::uint16_t>(*value);
    }
  }
  if (!options.mode) {
    if (const auto it = conf.find("mode"); it != conf.end() && it->is_string()) {
      options.mode = it->get<std::string>();
    }
  }
  if (!options.mtu) {
    if (const auto it = conf.find("mtu"); it != conf.end() && it->is_number_integer()) {
      options.mtu = it->get<int>();
    }
  }
  if (options.store_dir.empty()) {
    if (const auto ipam = conf.find("ipam"); ipam != conf.end() && ipam->is_object()) {
      if (const auto it = ipam->find("store_dir"); it != ipam->end() && it->is_string()) {
        options.store_dir = it->get<std::string>();
      }
    }
  }
  return ok_status();
}

json parse_quiet(std::string_view text) {
  return json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
}

}  // namespace

namespace detail {

std::optional<std::string> nad_yaml_config(std::string_view yaml) {
  const auto lines = split(yaml, '\n');
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    const auto key = line.find("config:");
    if (key == std::string_view::npos || !trim(line.substr(0, key)).empty()) {
      continue;
    }
    const std::size_t indent = key;
    std::string_view rest = trim(line.substr(key + 7));
    if (rest.empty()) {
      continue;
    }
    if (rest.front() == '|' || rest.front() == '>') {
      // Block scalar: the following lines indented deeper than the key.
      std::string out;
      for (std::size_t j = i + 1; j < lines.size(); ++j) {
        const std::string_view next = lines[j];
        const auto first = next.find_first_not_of(' ');
        if (first != std::string_view::npos && first <= indent && !trim(next).empty()) {
          break;
        }
        out += std::string(next) + "\n";
      }
      return out;
    }
    const char quote = rest.front();
    if (quote != '\'' && quote != '"') {
      return std::string(rest);
    }
    // Quoted scalar, possibly spanning lines; '' is an escaped quote in single-quoted YAML.
    std::string text(yaml.substr(static_cast<std::size_t>(rest.data() - yaml.data()) + 1));
    std::string out;
    for (std::size_t k = 0; k < text.size(); ++k) {
      if (text[k] == quote) {
        if (quote == '\'' && k + 1 < text.size() && text[k + 1] == '\'') {
          out.push_back('\'');
          ++k;
          continue;
        }
        return out;
      }
      if (quote == '"' && text[k] == '\\' && k + 1 < text.size()) {
        out.push_back(text[++k]);
        continue;
      }
      out.push_back(text[k]);
    }
    return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace detail

Status apply_config_file(const std::string& path, DoctorOptions& options) {
  auto text = ib::read_text_file(path);
  if (!text.ok()) {
    return std::move(text).error().with_context("--config");
  }
  json doc = parse_quiet(*text);
  if (doc.is_discarded()) {
    // A NetworkAttachmentDefinition in YAML: only spec.config matters.
    auto config = detail::nad_yaml_config(*text);
    if (!config) {
      return Error(ErrorCode::kDecodeFailure,
                   "--config " + path +
                       ": neither JSON nor a NetworkAttachmentDefinition with "
                       "spec.config");
    }
    doc = parse_quiet(*config);
    if (doc.is_discarded()) {
      return Error(ErrorCode::kDecodeFailure, "--config " + path + ": spec.config is not JSON");
    }
  }
  // NAD as JSON: {"spec": {"config": "<json text>"}}.
  if (doc.is_object() && doc.contains("spec") && doc["spec"].is_object() &&
      doc["spec"].contains("config") && doc["spec"]["config"].is_string()) {
    doc = parse_quiet(doc["spec"]["config"].get<std::string>());
    if (doc.is_discarded()) {
      return Error(ErrorCode::kDecodeFailure, "--config " + path + ": spec.config is not JSON");
    }
  }
  const json* conf = find_ipoib(doc);
  if (conf == nullptr) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "--config " + path + ": no plugin of type \"ipoib\" in it");
  }
  return apply(*conf, options);
}

}  // namespace ipoib::doctor
