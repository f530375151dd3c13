// The installed executable. Wires the real implementations into lib/ and nothing else:
//   ipoib                      a CNI plugin (CNI_COMMAND in the environment, config on stdin)
//   whereabouts                the same file under that name: the built-in IPAM as a plugin
//   ipoib --version            project version and supported CNI versions
//   ipoib doctor [...]         node preflight
//   ipoib ipam <list|release>  the IPAM store, for administrators
//   ipoib validate-config F    checks a CNI config / conflist / NetworkAttachmentDefinition
//   ipoib install [...]        installs this executable on the node (the image has no shell)
//   ipoib sleep                waits for SIGTERM (the DaemonSet's main container)
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "ipoib/base/log.h"
#include "ipoib/cni/skel.h"
#include "ipoib/cni/version.h"
#include "ipoib/doctor/doctor.h"
#include "ipoib/install/install.h"
#include "ipoib/ipam/ipam.h"
#include "ipoib/plugin/ipoib_plugin.h"

namespace {

std::string_view base_name(const char* path) {
  std::string_view p = path != nullptr ? path : "";
  const auto slash = p.rfind('/');
  return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

void print_version() {
  std::printf("ipoib %s\nCNI spec versions: %s\n", IPOIB_VERSION,
              ipoib::cni::supported_versions_text().c_str());
}

void print_usage() {
  std::printf(
      "usage: ipoib                         CNI plugin (CNI_COMMAND and config on stdin)\n"
      "       ipoib --version\n"
      "       ipoib doctor [--help]         check this node for IPoIB/MPI readiness\n"
      "       ipoib ipam list|release ...   inspect or repair the IPAM store\n"
      "       ipoib validate-config FILE    validate a CNI config, conflist or NAD\n"
      "       ipoib install [--help]        install this executable on the node\n"
      "       ipoib sleep                   wait for SIGTERM (the DaemonSet's main container)\n"
      "Installed as 'whereabouts', it is a standalone IPAM plugin.\n");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view self = base_name(argc > 0 ? argv[0] : nullptr);
  if (argc > 1) {
    const std::string_view sub = argv[1];
    if (sub == "--version" || sub == "-v") {
      print_version();
      return 0;
    }
    if (sub == "--help" || sub == "-h") {
      print_usage();
      return 0;
    }
    if (sub == "doctor") {
      return ipoib::doctor::main(argc - 1, argv + 1);
    }
    if (sub == "ipam") {
      return ipoib::ipam::admin_main(argc - 1, argv + 1);
    }
    if (sub == "validate-config") {
      return ipoib::plugin::validate_config_main(argc - 1, argv + 1);
    }
    if (sub == "install") {
      return ipoib::install::install_main(argc - 1, argv + 1);
    }
    if (sub == "sleep") {
      return ipoib::install::sleep_main(argc - 1, argv + 1);
    }
    // Runtimes exec plugins without arguments; anything else is a mistake worth naming.
    if (std::getenv("CNI_COMMAND") == nullptr) {
      (void)std::fprintf(stderr, "ipoib: unknown command '%s'\n", argv[1]);
      print_usage();
      return 2;
    }
  }

  ipoib::Logger log;
  const ipoib::cni::ProcessIo io = ipoib::cni::real_process_io();
  if (self == "whereabouts") {
    auto ipam = ipoib::ipam::make_builtin_ipam(log);
    return ipoib::cni::run_plugin(*ipam, io, log);
  }
  auto plugin = ipoib::plugin::make_ipoib_plugin(log);
  return ipoib::cni::run_plugin(*plugin, io, log);
}
