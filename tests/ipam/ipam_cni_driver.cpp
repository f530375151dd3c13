// What the real executable does for the IPAM, for process-level tests before cmd/ipoib exists:
// invoked as `whereabouts` (argv[0] basename) it is the standalone CNI IPAM plugin; `... ipam
// list|release` runs the admin commands.
#include <cstring>
#include <string_view>

#include "ipoib/base/log.h"
#include "ipoib/cni/skel.h"
#include "ipoib/ipam/ipam.h"

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "ipam") == 0) {
    return ipoib::ipam::admin_main(argc - 1, argv + 1);
  }
  ipoib::Logger log;
  auto plugin = ipoib::ipam::make_builtin_ipam(log);
  return ipoib::cni::run_plugin(*plugin, ipoib::cni::real_process_io(), log);
}
