// ipoib/plugin/ipoib_plugin.h — the ipoib CNI plugin: ADD, DEL, CHECK, GC and STATUS composed
// from the netlink/netns operations, the IB port queries and the IPAM (built-in or delegated).
//
//   Logger log;
//   auto plugin = plugin::make_ipoib_plugin(log);                  // what cmd/ipoib runs
//   return cni::run_plugin(*plugin, cni::real_process_io(), log);
//
//   // Test executables swap the child kind and may decorate the link operations:
//   auto p = plugin::make_plugin({.kind = my_kind, .links = my_links,
//                                 .ipam = plugin::default_ipam_factory(log),
//                                 .intent_dir = tmp + "/intents"}, log);
//
// Each verb is a short sequence of named steps in lib/plugin/plugin.cpp: ADD validates
// everything first (config, IPAM section, delegate, master, pod netns), then creates the child
// (intent, create, tag, rename), reserves addresses, configures the link (MTU, addresses, up,
// routes) and builds the result; any failure unwinds the steps done (UndoStack). DEL and GC
// choose what to delete with the pure functions of collect.h.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "ipoib/base/error.h"
#include "ipoib/base/log.h"
#include "ipoib/cni/skel.h"
#include "ipoib/plugin/child_kind.h"
#include "ipoib/plugin/config.h"
#include "ipoib/plugin/intent.h"
#include "ipoib/plugin/link_ops.h"

namespace ipoib::plugin {

// Makes the IPAM plugin for a configured section (never called for IpamKind::kNone).
// `request` gives CNI_PATH and the environment of the invocation.
using IpamFactory = std::function<Result<std::unique_ptr<cni::Plugin>>(
    const IpamSection& section, const cni::Request& request)>;

// Built-in types in-process (ipam::make_builtin_ipam), anything else delegated to the binary in
// CNI_PATH with this process's environment (delegate.h).
IpamFactory default_ipam_factory(Logger& log);

struct PluginSeams {
  std::unique_ptr<ChildKind> kind;
  std::unique_ptr<LinkOps> links;
  IpamFactory ipam;
  // Where ADD records its intent before creating a child (intent.h); tests use their own.
  std::string intent_dir = std::string(IntentDirectory::kDefaultPath);
  // Where the built-in IPAM's flat file is searched when the config is validated (the same
  // sources the IPAM itself uses).
  ipam::ConfigSources ipam_sources;
};

// The plugin over the given seams. `log` must outlive it.
std::unique_ptr<cni::Plugin> make_plugin(PluginSeams seams, Logger& log);

// The installed plugin: IPoIB kind with sysfs/verbs port queries, kernel link operations,
// default IPAM factory.
std::unique_ptr<cni::Plugin> make_ipoib_plugin(Logger& log);

// `ipoib validate-config FILE`: checks a network config, a conflist (every plugin of type
// "ipoib") or a NetworkAttachmentDefinition (JSON, or YAML whose spec.config is a quoted or
// block string) without touching the kernel. argv[0] is "validate-config". Prints "ok: ..." or
// the error naming the key; returns 0 when valid, 1 when not, 2 on usage errors.
int validate_config_main(int argc, char** argv);

}  // namespace ipoib::plugin
