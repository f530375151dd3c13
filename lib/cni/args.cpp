#include "ipoib/cni/args.h"

#include <array>

#include "ipoib/base/strings.h"

namespace ipoib::cni {
namespace {

// Keys this project understands. The K8S_* keys come from containerd, CRI-O and Multus; IP, MAC
// and GATEWAY are the deprecated static-IPAM/Multus keys (containernetworking/plugins static).
constexpr std::array<std::string_view, 8> kKnownKeys = {
    "IgnoreUnknown", "K8S_POD_NAMESPACE",
    "K8S_POD_NAME",  "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",   "IP",
    "MAC",           "GATEWAY"};

bool is_known_key(std::string_view key) {
  for (const auto k : kKnownKeys) {
    if (k == key) {
      return true;
    }
  }
  return false;
}

// libcni types.UnmarshallableBool: "1"/"true" and "0"/"false", any case; anything else fails.
std::optional<bool> parse_bool(std::string_view v) {
  if (v == "1" || iequals(v, "true")) {
    return true;
  }
  if (v == "0" || iequals(v, "false")) {
    return false;
  }
  return std::nullopt;
}

std::string quoted(std::string_view s) { return "\"" + std::string(s.substr(0, 64)) + "\""; }

}  // namespace

std::optional<std::string> CniArgs::get(std::string_view key) const {
  for (auto it = pairs.rbegin(); it != pairs.rend(); ++it) {
    if (it->first == key) {
      return it->second;
    }
  }
  return std::nullopt;
}

bool is_dns1123_label(std::string_view s) {
  if (s.empty() || s.size() > 63) {
    return false;
  }
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  for (const char c : s) {
    if (!alnum(c) && c != '-') {
      return false;
    }
  }
  return alnum(s.front()) && alnum(s.back());
}

bool is_dns1123_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) {
    return false;
  }
  for (const std::string_view label : split(s, '.')) {
    if (!is_dns1123_label(label)) {
      return false;
    }
  }
  return true;
}

std::string CniArgs::pod_ref() const {
  if (!pod_ref_problem().empty() || pod_namespace.empty() || pod_name.empty()) {
    return {};
  }
  return pod_namespace + "/" + pod_name;
}

std::string CniArgs::pod_ref_problem() const {
  if (pod_namespace.empty() || pod_name.empty()) {
    return {};  // no reference is formed: nothing is wrong
  }
  if (!is_dns1123_label(pod_namespace)) {
    return "K8S_POD_NAMESPACE is not a DNS-1123 label (what Kubernetes allows for a namespace)";
  }
  if (!is_dns1123_subdomain(pod_name)) {
    return "K8S_POD_NAME is not a DNS-1123 subdomain (what Kubernetes allows for a pod name)";
  }
  return {};
}

Result<CniArgs> parse_cni_args(std::string_view text) {
  CniArgs out;
  std::vector<std::string> unknown;
  for (const std::string_view element : split(text, ';')) {
    // libcni rejects empty elements ("a=b;"); runtimes never send them but hand-written
    // CNI_ARGS do, and nothing is ambiguous about skipping them.
    if (element.empty()) {
      continue;
    }
    // Split on the first '=' only: Multus passes values that contain '=' (libcni would fail).
    const auto eq = element.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return Error(ErrorCode::kInvalidEnvironment, "CNI_ARGS: invalid pair " + quoted(element));
    }
    const std::string_view key = element.substr(0, eq);
    const std::string_view value = element.substr(eq + 1);
    if (key == "IgnoreUnknown") {
      const auto b = parse_bool(value);
      if (!b) {
        return Error(ErrorCode::kInvalidEnvironment,
                     "CNI_ARGS: IgnoreUnknown must be 1, 0, true or false, not " + quoted(value));
      }
      // A later pair wins, as for every other key (Multus thin mode repeats the whole list).
      out.ignore_unknown = *b;
    } else if (key == "K8S_POD_NAMESPACE") {
      out.pod_namespace = value;
    } else if (key == "K8S_POD_NAME") {
      out.pod_name = value;
    } else if (key == "K8S_POD_INFRA_CONTAINER_ID") {
      out.pod_infra_container_id = value;
    } else if (key == "K8S_POD_UID") {
      out.pod_uid = value;
    } else if (!is_known_key(key)) {
      unknown.emplace_back(key);
    }
    out.pairs.emplace_back(std::string(key), std::string(value));
  }
  // As libcni's LoadArgs: IgnoreUnknown applies to the whole string, wherever it appears.
  if (!unknown.empty() && !out.ignore_unknown) {
    std::string names;
    for (const auto& k : unknown) {
      names += (names.empty() ? "" : ", ") + quoted(k);
    }
    return Error(ErrorCode::kInvalidEnvironment, "CNI_ARGS: unknown args " + names,
                 "set IgnoreUnknown=1 to accept keys this plugin does not use");
  }
  return out;
}

}  // namespace ipoib::cni
