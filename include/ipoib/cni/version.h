// ipoib/cni/version.h — the CNI spec versions this project speaks and how they compare.
//
//   auto v = parse_version("0.3.1");            // Result<CniVersion>
//   if (*v < CniVersion::k0_4_0) { /* CHECK not allowed */ }
//   to_string(CniVersion::k1_1_0);              // "1.1.0"
#pragma once

#include <array>
#include <string_view>

#include "ipoib/base/error.h"

namespace ipoib::cni {

// Ordered: comparisons follow the spec's version order.
enum class CniVersion : int { k0_1_0, k0_2_0, k0_3_0, k0_3_1, k0_4_0, k1_0_0, k1_1_0 };

inline constexpr std::array<CniVersion, 7> kSupportedVersions = {
    CniVersion::k0_1_0, CniVersion::k0_2_0, CniVersion::k0_3_0, CniVersion::k0_3_1,
    CniVersion::k0_4_0, CniVersion::k1_0_0, CniVersion::k1_1_0};

inline constexpr CniVersion kLatestVersion = CniVersion::k1_1_0;

std::string_view to_string(CniVersion v);

// Exactly one of the supported strings; anything else is kIncompatibleVersion whose details
// list the supported versions.
Result<CniVersion> parse_version(std::string_view text);

// The supported list as the VERSION/error "details" text: "0.1.0, 0.2.0, ...".
std::string supported_versions_text();

}  // namespace ipoib::cni
