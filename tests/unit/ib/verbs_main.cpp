// unit.ib.verbs: libibverbs against real hardware. Needs an HCA (/sys/class/infiniband/* with a
// uverbs device); without one it exits 77 and says why.
//
// Checks that the statically linked providers let ibv_get_device_list() see every device sysfs
// lists, and that the verbs answer for each IPoIB netdev's port agrees with sysfs.
#include <cstdio>

#include "ipoib/ib/netdev.h"
#include "ipoib/ib/port.h"
#include "ipoib/ib/sysfs_file.h"
#include "lib/ib/verbs_query.h"

using namespace ipoib;

int main() {
  auto devices = ib::list_directory("/sys/class/infiniband");
  if (!devices.ok() || devices->empty()) {
    std::printf("SKIP: no InfiniBand device on this host (/sys/class/infiniband is empty)\n");
    return 77;
  }
  if (ib::path_kind("/dev/infiniband") != ib::PathKind::kDirectory) {
    std::printf("SKIP: /dev/infiniband missing (ib_uverbs not loaded)\n");
    return 77;
  }
  int failures = 0;
  const auto verbs_names = ib::detail::verbs_device_names();
  for (const std::string& device : *devices) {
    bool seen = false;
    for (const std::string& name : verbs_names) {
      seen = seen || name == device;
    }
    if (!seen) {
      std::printf("FAIL: libibverbs does not list %s (provider not linked?)\n", device.c_str());
      ++failures;
    }
  }
  const ib::SysfsRoot root;
  const auto names = ib::list_netdevs(root);
  int compared = 0;
  for (const std::string& name : names.ok() ? *names : std::vector<std::string>{}) {
    auto sysfs_port = ib::find_port_for_netdev(root, name);
    if (!sysfs_port.ok()) {
      continue;
    }
    auto verbs_port = ib::detail::query_port_verbs(sysfs_port->device, sysfs_port->port_num);
    if (!verbs_port || !verbs_port->ok()) {
      std::printf("FAIL: %s: verbs query of %s port %d failed: %s\n", name.c_str(),
                  sysfs_port->device.c_str(), sysfs_port->port_num,
                  verbs_port ? verbs_port->error().msg().c_str() : "device not listed");
      ++failures;
      continue;
    }
    const ib::IbPort& v = verbs_port->value();
    if (v.state != sysfs_port->state || v.sm_lid != sysfs_port->sm_lid ||
        v.lid != sysfs_port->lid || v.pkeys != sysfs_port->pkeys || v.gid0 != sysfs_port->gid0) {
      std::printf("FAIL: %s: verbs and sysfs disagree on %s port %d\n", name.c_str(),
                  v.device.c_str(), v.port_num);
      ++failures;
    }
    ++compared;
  }
  if (compared == 0 && failures == 0) {
    std::printf("SKIP: HCA present but no IPoIB netdev maps to it\n");
    return 77;
  }
  std::printf("%d port(s) compared, %d failure(s)\n", compared, failures);
  return failures == 0 ? 0 : 1;
}
