// libFuzzer target for the netlink module's parsers of kernel replies (untrusted bytes: a
// reply may come from a newer kernel with attributes this code never saw).
//
// The first input byte picks the parser; the rest is one netlink message. Exercises
// read_header, split_attributes (and recursively every attribute payload as a nest),
// parse_link_message, parse_address_message and parse_route_message. A parsed link must
// survive being rebuilt as a request from what was read (an IPoIB child: name, parent, pkey,
// mode, umcast).
#include <cstddef>
#include <cstdint>

#include "ipoib/netlink/address.h"
#include "ipoib/netlink/link.h"
#include "ipoib/netlink/message.h"
#include "ipoib/netlink/route.h"

namespace {

using namespace ipoib::netlink;

void walk(ByteView bytes, int depth) {
  auto attrs = split_attributes(bytes);
  if (!attrs.ok() || depth > 3) {
    return;
  }
  for (const Attribute& a : *attrs) {
    walk(a.payload, depth + 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const ByteView message(data + 1, size - 1);
  (void)read_header(message);
  switch (data[0] % 4) {
    case 0:
      walk(message, 0);
      break;
    case 1: {
      auto link = parse_link_message(message);
      if (link.ok() && link->kind == "ipoib" && link->ipoib && link->parent_ifindex &&
          *link->parent_ifindex > 0) {
        (void)build_ipoib_child_request({.parent_ifindex = *link->parent_ifindex,
                                         .name = link->name,
                                         .pkey = link->ipoib->pkey,
                                         .mode = link->ipoib->mode,
                                         .umcast = link->ipoib->umcast});
      }
      break;
    }
    case 2:
      (void)parse_address_message(message);
      break;
    default:
      (void)parse_route_message(message);
      break;
  }
  return 0;
}
