// lib/ib/verbs_query.h — internal: the libibverbs side of the port query.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/ib/port.h"

namespace ipoib::ib::detail {

// Queries `device` port `port_num` through libibverbs. nullopt when verbs lists no such device
// (no uverbs, no provider, or no hardware); an Error when the device is listed but cannot be
// opened or queried (EPERM when the RDMA subsystem is in exclusive netns mode and the caller's
// netns does not own the device).
std::optional<Result<IbPort>> query_port_verbs(std::string_view device, int port_num);

// Names of the devices libibverbs lists (empty without hardware or uverbs).
std::vector<std::string> verbs_device_names();

}  // namespace ipoib::ib::detail
