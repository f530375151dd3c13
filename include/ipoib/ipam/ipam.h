// ipoib/ipam/ipam.h — the built-in IPAM (whereabouts-compatible configuration, file store).
//
// The built-in IPAM is a cni::Plugin that speaks the IPAM side of the protocol: its ADD result
// has ips (no interface index), routes and dns, and no interfaces. The ipoib plugin calls it
// in-process when `ipam.type` is built in; the executable invoked as `whereabouts` runs it as a
// standalone IPAM plugin.
//
//   if (ipam::is_builtin_type(type)) {
//     auto ipam = ipam::make_builtin_ipam(log);
//     IPOIB_TRY_ASSIGN(cni::CniResult r, ipam->add(req));   // req.conf.raw["ipam"] is the config
//   }
#pragma once

#include <memory>
#include <string_view>

#include "ipoib/base/log.h"
#include "ipoib/cni/skel.h"

namespace ipoib::ipam {

// Where the store lives when the config does not say (`store_dir`).
inline constexpr std::string_view kDefaultStoreDir = "/var/lib/cni/ipoib-ipam";

// Whether `type` is served in-process ("whereabouts").
bool is_builtin_type(std::string_view type);

// The built-in IPAM. Reads its configuration from request.conf.raw["ipam"] on every call, so one
// instance serves any network. `log` must outlive the returned object.
std::unique_ptr<cni::Plugin> make_builtin_ipam(Logger& log);

// `ipoib ipam <list|release> ...`: the administrator's view of the store. argv[0] is "ipam".
// Returns the process exit status.
int admin_main(int argc, char** argv);

}  // namespace ipoib::ipam
