#include "ipoib/ib/port.h"
#include "lib/ib/verbs_query.h"

namespace ipoib::ib {
namespace {

// sysfs maps the netdev to (device, port); verbs then answers for the port when it lists the
// device. A verbs failure (EPERM in exclusive RDMA netns mode, a missing provider) falls back to
// the sysfs answer, which is equally authoritative for state, pkeys and GID.
class SystemPortQuery final : public PortQuery {
 public:
  explicit SystemPortQuery(SysfsRoot root) : root_(std::move(root)) {}

  [[nodiscard]] Result<IbPort> port_for_netdev(std::string_view ifname) const override {
    IPOIB_TRY_ASSIGN(IbPort sysfs_port, find_port_for_netdev(root_, ifname));
    auto verbs_port = detail::query_port_verbs(sysfs_port.device, sysfs_port.port_num);
    if (!verbs_port || !verbs_port->ok()) {
      return sysfs_port;
    }
    IbPort port = std::move(*verbs_port).value();
    port.netdev = sysfs_port.netdev;
    port.rate = sysfs_port.rate;
    return port;
  }

 private:
  SysfsRoot root_;
};

}  // namespace

std::unique_ptr<PortQuery> make_system_port_query(SysfsRoot root) {
  return std::make_unique<SystemPortQuery>(std::move(root));
}

}  // namespace ipoib::ib
