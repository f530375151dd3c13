// ipoib/cni/args.h — CNI_ARGS ("K=V;K=V") as real runtimes send it.
//
//   auto a = parse_cni_args("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p");
//   a->pod_namespace;     // "ns"
//   a->get("IP");         // optional<string>
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ipoib/base/error.h"

namespace ipoib::cni {

struct CniArgs {
  bool ignore_unknown = false;         // IgnoreUnknown=1|true (any case)
  std::string pod_namespace;           // K8S_POD_NAMESPACE
  std::string pod_name;                // K8S_POD_NAME
  std::string pod_infra_container_id;  // K8S_POD_INFRA_CONTAINER_ID
  std::string pod_uid;                 // K8S_POD_UID
  // Every pair in order of appearance (duplicates kept; Multus thin mode repeats keys).
  std::vector<std::pair<std::string, std::string>> pairs;

  // The last value given for `key`, if any.
  [[nodiscard]] std::optional<std::string> get(std::string_view key) const;
  // "namespace/name" when both are given and valid as Kubernetes validates them: the namespace a
  // DNS-1123 label, the name a DNS-1123 subdomain (neither can hold a '/', so the reference is
  // unambiguous: "a/b"+"c" and "a"+"b/c" cannot collide). Else empty.
  [[nodiscard]] std::string pod_ref() const;
  // Why pod_ref() is empty although both a namespace and a name were given ("" when it is not).
  [[nodiscard]] std::string pod_ref_problem() const;
};

// RFC 1123 label as Kubernetes' IsDNS1123Label: 1..63 of [a-z0-9-], alphanumeric at both ends.
bool is_dns1123_label(std::string_view s);
// Kubernetes' IsDNS1123Subdomain: 1..253 bytes, dot-separated DNS-1123 labels.
bool is_dns1123_subdomain(std::string_view s);

// Splits on ';' then on the first '='. Empty text and empty elements are fine. A pair without
// '=' or with an empty key is kInvalidEnvironment. Keys this project does not know (anything but
// IgnoreUnknown, the K8S_* keys, IP, MAC, GATEWAY) are kInvalidEnvironment naming the key unless
// IgnoreUnknown is set anywhere in the string. A duplicated key keeps its last value.
// IgnoreUnknown itself must be 1/0/true/false (any case), else kInvalidEnvironment (libcni's
// UnmarshallableBool). Unlike libcni, values may contain '=' and empty elements are skipped.
Result<CniArgs> parse_cni_args(std::string_view text);

}  // namespace ipoib::cni
