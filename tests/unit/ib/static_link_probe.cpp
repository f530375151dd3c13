// unit.ib.static_link: proves lib/ib links into a fully static executable (as `ipoib` is) with
// libibverbs' providers registered statically, and that ibv_get_device_list() runs there.
// Exit 0 and the device count; on a host without an HCA the count is 0, which is the expected
// answer (sysfs has no /sys/class/infiniband either, checked below).
#include <cstdio>

#include "ipoib/ib/sysfs_file.h"
#include "lib/ib/verbs_query.h"

int main() {
  const auto names = ipoib::ib::detail::verbs_device_names();
  const auto sysfs = ipoib::ib::list_directory("/sys/class/infiniband_verbs");
  const std::size_t sysfs_count = sysfs.ok() ? sysfs->size() : 0;
  std::printf("libibverbs lists %zu device(s); /sys/class/infiniband_verbs has %zu\n", names.size(),
              sysfs_count);
  // Each uverbs device in sysfs needs a provider: a shortfall means providers are missing.
  // (infiniband_verbs also holds the ABI version file.)
  const std::size_t uverbs = sysfs_count > 0 ? sysfs_count - 1 : 0;
  return names.size() >= uverbs ? 0 : 1;
}
