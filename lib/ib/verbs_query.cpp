// The one translation unit that calls libibverbs.
//
// The `ipoib` executable is fully static. A static libibverbs finds no providers at run time
// (there is no dlopen of lib*-rdmav*.so), so ibv_get_device_list() would return an empty list
// on a host with an HCA. rdma-core's answer (verbs.h, "RDMA_STATIC_PROVIDERS"): defining it
// before including verbs.h turns ibv_get_device_list() into a call that first references
// verbs_provider_<name> for each listed provider, pulling their archives into the link and
// registering them (ibv_static_providers()). `all` names verbs_provider_all in libibverbs.a,
// which references every provider Debian ships (mlx4, mlx5, mthca, hfi1, qib, rxe, ...).
// The symbols exist only in the static archives, so lib/ib/CMakeLists.txt always links
// libibverbs.a and the provider archives, also into dynamically linked test executables.
#define RDMA_STATIC_PROVIDERS all
#include "lib/ib/verbs_query.h"

#include <endian.h>
#include <infiniband/verbs.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ipoib/base/errno_error.h"

namespace ipoib::ib::detail {
namespace {

struct DeviceListDeleter {
  void operator()(ibv_device** list) const { ibv_free_device_list(list); }
};
using DeviceList = std::unique_ptr<ibv_device*, DeviceListDeleter>;

struct ContextDeleter {
  void operator()(ibv_context* ctx) const { ibv_close_device(ctx); }
};
using Context = std::unique_ptr<ibv_context, ContextDeleter>;

DeviceList get_devices(int& count) {
  count = 0;
  return DeviceList(ibv_get_device_list(&count));
}

std::string state_text(PortState state) {
  return std::to_string(static_cast<int>(state)) + ": " + std::string(to_string(state));
}

}  // namespace

std::vector<std::string> verbs_device_names() {
  int count = 0;
  DeviceList list = get_devices(count);
  std::vector<std::string> names;
  for (int i = 0; list && i < count; ++i) {
    names.emplace_back(ibv_get_device_name(list.get()[i]));
  }
  return names;
}

std::optional<Result<IbPort>> query_port_verbs(std::string_view device, int port_num) {
  int count = 0;
  DeviceList list = get_devices(count);
  ibv_device* found = nullptr;
  for (int i = 0; list && i < count; ++i) {
    if (device == ibv_get_device_name(list.get()[i])) {
      found = list.get()[i];
    }
  }
  if (found == nullptr) {
    return std::nullopt;
  }
  const std::string where = std::string(device) + " port " + std::to_string(port_num);
  Context ctx(ibv_open_device(found));
  if (!ctx) {
    return Result<IbPort>(
        errno_error(ErrorCode::kIoFailure, "ibv_open_device " + std::string(device)));
  }
  ibv_port_attr attr{};
  if (const int rc = ibv_query_port(ctx.get(), static_cast<std::uint8_t>(port_num), &attr);
      rc != 0) {
    return Result<IbPort>(errno_error(ErrorCode::kIoFailure, "ibv_query_port " + where, rc));
  }
  IbPort port;
  port.device = std::string(device);
  port.port_num = port_num;
  port.source = QuerySource::kVerbs;
  port.state = (attr.state <= IBV_PORT_ACTIVE_DEFER) ? static_cast<PortState>(attr.state)
                                                     : PortState::kUnknown;
  port.state_text = state_text(port.state);
  port.phys_state = (attr.phys_state >= 1 && attr.phys_state <= 7)
                        ? static_cast<PhysState>(attr.phys_state)
                        : PhysState::kUnknown;
  port.phys_state_text = std::to_string(static_cast<int>(attr.phys_state)) + ": " +
                         std::string(to_string(port.phys_state));
  port.link_layer = attr.link_layer == IBV_LINK_LAYER_ETHERNET ? "Ethernet" : "InfiniBand";
  port.lid = attr.lid;
  port.sm_lid = attr.sm_lid;
  if (attr.active_mtu >= IBV_MTU_256 && attr.active_mtu <= IBV_MTU_4096) {
    port.active_mtu_bytes = 128 << static_cast<int>(attr.active_mtu);  // IBV_MTU_256 == 1
  }
  for (int i = 0; i < attr.pkey_tbl_len; ++i) {
    __be16 pkey_be = 0;
    if (ibv_query_pkey(ctx.get(), static_cast<std::uint8_t>(port_num), i, &pkey_be) != 0) {
      return Result<IbPort>(errno_error(ErrorCode::kIoFailure, "ibv_query_pkey " + where));
    }
    port.pkeys.push_back(be16toh(pkey_be));  // verbs returns pkeys in network byte order
  }
  ibv_gid gid{};
  if (ibv_query_gid(ctx.get(), static_cast<std::uint8_t>(port_num), 0, &gid) == 0) {
    std::array<std::uint8_t, 16> bytes{};
    std::memcpy(bytes.data(), gid.raw, bytes.size());
    port.gid0 = bytes;
  }
  return Result<IbPort>(std::move(port));
}

}  // namespace ipoib::ib::detail
