// ipoib/ib/port.h — which InfiniBand HCA port an IPoIB netdev sits on, and that port's state.
//
// The only module that knows sysfs's InfiniBand layout and libibverbs. Everything else asks here:
//
//   ib::SysfsRoot root;                                    // "/" on a node, a fixture in tests
//   IPOIB_TRY_ASSIGN(ib::IbPort port, ib::find_port_for_netdev(root, "ib0"));
//   if (!ib::port_usable(port)) return Error(ErrorCode::kNotAvailable, ib::explain_port(port));
//   if (ib::pkey_in_table(port, 0x8001) == ib::PkeyMembership::kAbsent) ...
//   std::string why = ib::explain_carrier_down(port, 0x8001);   // "" when nothing explains it
//
// Namespace: sysfs does not follow setns() — /sys shows the namespace it was mounted in, and
// /sys/class/infiniband is the host's. Call these functions in the host netns (e.g. in ADD/CHECK
// before entering the pod netns, or from STATUS which never enters one).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"

namespace ipoib::ib {

// Where sysfs (and, for the doctor, procfs/etc) is rooted. Tests point it at a fixture tree.
struct SysfsRoot {
  std::string path = "/";
  // "<path>/<relative>" with exactly one slash between; `relative` may start with '/'.
  [[nodiscard]] std::string join(std::string_view relative) const;
};

// enum ib_port_state (include/rdma/ib_verbs.h); sysfs prints "<n>: <NAME>" (ports/<n>/state).
enum class PortState : int {
  kNop = 0,
  kDown = 1,
  kInit = 2,
  kArmed = 3,
  kActive = 4,
  kActiveDefer = 5,
  kUnknown = -1,
};

// IB spec PortPhysicalState; sysfs prints "<n>: <Name>" (ports/<n>/phys_state, e.g. "5: LinkUp").
enum class PhysState : int {
  kSleep = 1,
  kPolling = 2,
  kDisabled = 3,
  kPortConfigurationTraining = 4,
  kLinkUp = 5,
  kLinkErrorRecovery = 6,
  kPhyTest = 7,
  kUnknown = -1,
};

enum class QuerySource { kSysfs, kVerbs };

// One HCA port as the netdev sees it.
struct IbPort {
  std::string netdev;  // "ib0": the interface the port was found from ("" if direct)
  std::string device;  // RDMA device name, "mlx5_0"
  int port_num = 0;    // 1-based (sysfs dev_port + 1)
  PortState state = PortState::kUnknown;
  std::string state_text;  // sysfs text verbatim, "4: ACTIVE"
  PhysState phys_state = PhysState::kUnknown;
  std::string phys_state_text;  // "5: LinkUp"
  std::string link_layer;       // "InfiniBand" (IPoIB needs this, not "Ethernet")
  std::uint16_t lid = 0;
  std::uint16_t sm_lid = 0;  // 0: no subnet manager has configured the port
  // The port's pkey table in index order, host byte order, membership bit (0x8000) included;
  // empty slots (0x0000) are kept so indexes match ibv_query_pkey.
  std::vector<std::uint16_t> pkeys;
  std::optional<std::array<std::uint8_t, 16>> gid0;  // ports/<n>/gids/0 (the port GID)
  std::string rate;                                  // "100 Gb/sec (4X EDR)", "" if unreadable
  std::optional<int> active_mtu_bytes;               // IB MTU (256..4096); only verbs reports it
  QuerySource source = QuerySource::kSysfs;
};

// Reads ports/<port_num> of `device` under <root>/sys/class/infiniband.
// Errors: device or port directory missing -> kNotAvailable; unreadable/garbled state ->
// kIoFailure.
Result<IbPort> read_port(const SysfsRoot& root, std::string_view device, int port_num);

// Maps a netdev to its HCA port via /sys/class/net/<ifname>/device/infiniband/<dev> and
// dev_port (+1), then reads the port. When the interface address is readable, bytes 4..19 of
// it must equal gids/0 (a mismatch -> kNotAvailable naming both GIDs).
// Works for parents and for children (a child shares the parent's `device` link).
// Errors: interface missing, not type 32 (ARPHRD_INFINIBAND), or no infiniband device link ->
// kNotAvailable with the reason in the message.
Result<IbPort> find_port_for_netdev(const SysfsRoot& root, std::string_view ifname);

// How a partition is present in the port's table. The kernel (ib_find_pkey, drivers/infiniband/
// core/device.c) matches the low 15 bits and prefers a full-member entry; an IPoIB child always
// asks with 0x8000 set (ipoib_netlink.c), so 0x0001 and 0x8001 name the same partition.
enum class PkeyMembership { kAbsent, kLimited, kFull };
PkeyMembership pkey_in_table(const IbPort& port, std::uint16_t pkey);

// Whether IPoIB can carry traffic over the port: state ACTIVE, phys LinkUp, link layer InfiniBand.
bool port_usable(const IbPort& port);

// One line saying what is wrong with the port ("mlx5_0 port 1 is 1: DOWN (phys 3: Disabled)"),
// or "" when port_usable() and an SM is present.
std::string explain_port(const IbPort& port);

// Why an IPoIB interface on `port` with partition `pkey` would be carrier-down (operstate
// LOWERLAYERDOWN): port not ACTIVE / LinkUp, no SM (sm_lid 0), pkey not in the table (the SM has
// not added it; the child comes up by itself once it does — ipoib_pkey_event). Returns "" when
// none of these explains it (then: the broadcast group join failed or is pending).
std::string explain_carrier_down(const IbPort& port, std::optional<std::uint16_t> pkey);

// "4: ACTIVE" -> kActive; unknown or garbled -> kUnknown. Same for phys_state.
PortState parse_port_state(std::string_view sysfs_text);
PhysState parse_phys_state(std::string_view sysfs_text);
std::string_view to_string(PortState state);  // "ACTIVE"
std::string_view to_string(PhysState state);  // "LinkUp"

// "fe80:0000:0000:0000:0002:c903:00f1:2345" (sysfs gid format) <-> 16 bytes.
std::optional<std::array<std::uint8_t, 16>> parse_gid(std::string_view text);
std::string format_gid(const std::array<std::uint8_t, 16>& gid);

// The domain seam for IB queries: the plugin holds one of these so tests substitute a fake.
class PortQuery {
 public:
  virtual ~PortQuery() = default;
  // As find_port_for_netdev(); expects to be called in the host netns.
  [[nodiscard]] virtual Result<IbPort> port_for_netdev(std::string_view ifname) const = 0;
};

// sysfs only.
std::unique_ptr<PortQuery> make_sysfs_port_query(SysfsRoot root);
// sysfs for the netdev->port mapping, then libibverbs (when it lists the device) for state,
// pkeys and active MTU; falls back to the sysfs answer when verbs has no such device.
std::unique_ptr<PortQuery> make_system_port_query(SysfsRoot root = {});

}  // namespace ipoib::ib
