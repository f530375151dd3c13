// ipoib/cni/network_attachment.h — the network configurations in a file an administrator has:
// a CNI .conf or .conflist, or a NetworkAttachmentDefinition (Multus' CRD) whose spec.config
// holds one, as JSON or as YAML (spec.config single-quoted, double-quoted or a block scalar;
// several YAML documents separated by `---` are read one by one). Text only: what the configs
// say is the caller's to check (plugin::read_network_file, ipam::read_netconf_ipam).
//
//   IPOIB_TRY_ASSIGN(std::vector<NetworkConfigText> configs, network_config_texts(file_text));
//   configs[0].where;  // "", "spec.config" or "document 2 spec.config"
//   configs[0].text;   // a .conf or .conflist as JSON text
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"

namespace ipoib::cni {

// One network configuration of a file, and where in the file it stood.
struct NetworkConfigText {
  std::string where;  // "" (the file itself), "spec.config", "document 2 spec.config"
  std::string text;   // JSON text: a .conf or a .conflist (not checked here)
};

// The file itself when it is JSON and not a NetworkAttachmentDefinition; spec.config of a
// NetworkAttachmentDefinition given as JSON (`kubectl get net-attach-def NAME -o json`); else
// spec.config of every NetworkAttachmentDefinition document of a YAML text (nad_yaml_configs).
// kInvalidNetworkConfig for a JSON NAD without a spec.config string; kDecodeFailure for text
// that is neither (broken JSON keeps the JSON parser's message).
Result<std::vector<NetworkConfigText>> network_config_texts(std::string_view file_text);

// spec.config of every NetworkAttachmentDefinition document in a YAML text, as strings.
// kDecodeFailure naming the problem: no NetworkAttachmentDefinition, no spec.config, a config
// that is not a string (a flow mapping), an unterminated or malformed quoted scalar.
Result<std::vector<std::string>> nad_yaml_configs(std::string_view yaml);

}  // namespace ipoib::cni
