#include "ipoib/cni/version.h"

#include <string>

namespace ipoib::cni {

std::string_view to_string(CniVersion v) {
  switch (v) {
    case CniVersion::k0_1_0:
      return "0.1.0";
    case CniVersion::k0_2_0:
      return "0.2.0";
    case CniVersion::k0_3_0:
      return "0.3.0";
    case CniVersion::k0_3_1:
      return "0.3.1";
    case CniVersion::k0_4_0:
      return "0.4.0";
    case CniVersion::k1_0_0:
      return "1.0.0";
    case CniVersion::k1_1_0:
      return "1.1.0";
  }
  return "1.1.0";  // unreachable: the enum is closed
}

Result<CniVersion> parse_version(std::string_view text) {
  for (const CniVersion v : kSupportedVersions) {
    if (text == to_string(v)) {
      return v;
    }
  }
  // Bounded echo: the text comes from untrusted stdin.
  return Error(ErrorCode::kIncompatibleVersion,
               "incompatible CNI versions: config is \"" + std::string(text.substr(0, 32)) +
                   "\", plugin supports " + supported_versions_text(),
               supported_versions_text());
}

std::string supported_versions_text() {
  std::string out;
  for (const CniVersion v : kSupportedVersions) {
    if (!out.empty()) {
      out += ", ";
    }
    out += to_string(v);
  }
  return out;
}

}  // namespace ipoib::cni
