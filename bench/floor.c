// bench/floor.c — the floor every benchmark figure is reported against: a static program that
// does only the rtnetlink work a CNI ADD or DEL of a child interface needs, and nothing else (no
// configuration parsing, no IPAM, no result JSON, no libraries beyond libc).
//
//   floor add <parent> <netns-path> <tmp-name> <ifname> <a.b.c.d/len>
//       One RTM_NEWLINK creates macvlan child <tmp-name> of <parent> and moves it: IFLA_LINK is
//       looked up in the requesting socket's netns and IFLA_NET_NS_FD names the netns the device
//       is registered in (rtnl_newlink_create: rtnl_create_link(dest_net) then
//       ops->newlink(src_net = the socket's net); ipoib_new_child_link looks its parent up in
//       that src_net too). Then, inside <netns-path>: rename to <ifname>, RTM_NEWADDR, set up.
//       This is what Debian's Go macvlan does (netlink.LinkAdd with Namespace set).
//   floor add-move <same arguments>
//       The same with create and move as two requests (RTM_NEWLINK in the caller's netns, then
//       RTM_SETLINK IFLA_NET_NS_FD). Reported next to `add` because the separate move costs a
//       synchronize_net() (dev_change_net_namespace), i.e. one RCU grace period per ADD.
//   floor del <netns-path> <ifname>
//       RTM_DELLINK by name inside <netns-path>. Bound by the kernel: unregister_netdevice waits
//       for RCU (synchronize_net in rollback_registered_many), so this is the DEL floor.
//
// Every request carries NLM_F_ACK and its ack is read, as a plugin that reports errors must.
// Exit status 0 on success; 1 with a message naming the failed step otherwise.
// Built by scripts/bench: gcc -O2 -static -o floor bench/floor.c
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { kBufBytes = 8192 };

struct Request {
  struct nlmsghdr* hdr;
  char buf[1024] __attribute__((aligned(NLMSG_ALIGNTO)));
};

static uint32_t g_seq = 1;

static void die(const char* step, int err) {
  fprintf(stderr, "floor: %s: %s\n", step, strerror(err));
  exit(1);
}

static void req_init(struct Request* r, uint16_t type, uint16_t flags, const void* body,
                     size_t body_bytes) {
  memset(r->buf, 0, sizeof(r->buf));
  r->hdr = (struct nlmsghdr*)r->buf;
  r->hdr->nlmsg_len = (uint32_t)NLMSG_LENGTH(body_bytes);
  r->hdr->nlmsg_type = type;
  r->hdr->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | NLM_F_ACK | flags);
  r->hdr->nlmsg_seq = g_seq++;
  memcpy(NLMSG_DATA(r->hdr), body, body_bytes);
}

static struct rtattr* attr_put(struct Request* r, uint16_t type, const void* data,
                               size_t data_bytes) {
  const size_t at = NLMSG_ALIGN(r->hdr->nlmsg_len);
  const size_t len = RTA_LENGTH(data_bytes);
  if (at + RTA_ALIGN(len) > sizeof(r->buf)) die("building request", EMSGSIZE);
  struct rtattr* a = (struct rtattr*)(r->buf + at);
  a->rta_type = type;
  a->rta_len = (unsigned short)len;
  if (data_bytes > 0) memcpy(RTA_DATA(a), data, data_bytes);
  r->hdr->nlmsg_len = (uint32_t)(at + RTA_ALIGN(len));
  return a;
}

static struct rtattr* nest_begin(struct Request* r, uint16_t type) {
  return attr_put(r, type, NULL, 0);
}

static void nest_end(struct Request* r, struct rtattr* nest) {
  nest->rta_len = (unsigned short)(r->buf + r->hdr->nlmsg_len - (char*)nest);
}

static int nl_open(void) {
  const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) die("socket(NETLINK_ROUTE)", errno);
  struct sockaddr_nl local = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr*)&local, sizeof(local)) < 0) die("bind", errno);
  return fd;
}

// Sends the request and waits for its ack; exits naming `step` on a kernel error.
static void nl_call(int fd, struct Request* r, const char* step) {
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(fd, r->buf, r->hdr->nlmsg_len, 0, (struct sockaddr*)&kernel, sizeof(kernel)) < 0) {
    die(step, errno);
  }
  char reply[kBufBytes] __attribute__((aligned(NLMSG_ALIGNTO)));
  for (;;) {
    const ssize_t n = recv(fd, reply, sizeof(reply), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      die(step, errno);
    }
    int left = (int)n;
    for (struct nlmsghdr* h = (struct nlmsghdr*)reply; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_seq != r->hdr->nlmsg_seq || h->nlmsg_type != NLMSG_ERROR) continue;
      const struct nlmsgerr* e = (const struct nlmsgerr*)NLMSG_DATA(h);
      if (e->error != 0) die(step, -e->error);
      return;
    }
  }
}

static int open_netns(const char* path) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open netns", errno);
  return fd;
}

enum MoveHow { kMoveInCreate, kMoveSeparately };

static int cmd_add(enum MoveHow how, const char* parent, const char* netns_path,
                   const char* tmp_name, const char* ifname, const char* cidr) {
  char addr_text[INET_ADDRSTRLEN + 4];
  snprintf(addr_text, sizeof(addr_text), "%s", cidr);
  char* slash = strchr(addr_text, '/');
  if (slash == NULL) die("address needs /prefix", EINVAL);
  *slash = '\0';
  const long prefix_len = strtol(slash + 1, NULL, 10);
  struct in_addr addr;
  if (inet_pton(AF_INET, addr_text, &addr) != 1 || prefix_len < 0 || prefix_len > 32) {
    die("parsing address", EINVAL);
  }

  const unsigned parent_index = if_nametoindex(parent);
  if (parent_index == 0) die("parent lookup", errno);
  const int ns_fd = open_netns(netns_path);

  int fd = nl_open();
  struct Request r;
  struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};

  const uint32_t ns = (uint32_t)ns_fd;

  // 1. Create the child under a temporary name (a pod may already have an interface with the
  //    final name's peer in the parent's netns), registered in the pod netns when kMoveInCreate.
  req_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
  const uint32_t link = parent_index;
  attr_put(&r, IFLA_LINK, &link, sizeof(link));
  attr_put(&r, IFLA_IFNAME, tmp_name, strlen(tmp_name) + 1);
  if (how == kMoveInCreate) attr_put(&r, IFLA_NET_NS_FD, &ns, sizeof(ns));
  struct rtattr* info = nest_begin(&r, IFLA_LINKINFO);
  attr_put(&r, IFLA_INFO_KIND, "macvlan", strlen("macvlan"));
  struct rtattr* data = nest_begin(&r, IFLA_INFO_DATA);
  const uint32_t mode = MACVLAN_MODE_BRIDGE;
  attr_put(&r, IFLA_MACVLAN_MODE, &mode, sizeof(mode));
  nest_end(&r, data);
  nest_end(&r, info);
  nl_call(fd, &r, "create child");

  // 2. Otherwise move it into the pod netns (looked up by name: ifi_index 0 + IFLA_IFNAME).
  if (how == kMoveSeparately) {
    req_init(&r, RTM_SETLINK, 0, &ifi, sizeof(ifi));
    attr_put(&r, IFLA_IFNAME, tmp_name, strlen(tmp_name) + 1);
    attr_put(&r, IFLA_NET_NS_FD, &ns, sizeof(ns));
    nl_call(fd, &r, "move to netns");
  }
  close(fd);

  // 3. Inside the pod netns: a socket opened there talks to that netns' rtnl.
  if (setns(ns_fd, CLONE_NEWNET) < 0) die("setns", errno);
  close(ns_fd);
  fd = nl_open();
  const unsigned index = if_nametoindex(tmp_name);
  if (index == 0) die("child lookup in netns", errno);

  ifi.ifi_index = (int)index;
  req_init(&r, RTM_SETLINK, 0, &ifi, sizeof(ifi));
  attr_put(&r, IFLA_IFNAME, ifname, strlen(ifname) + 1);
  nl_call(fd, &r, "rename");

  struct ifaddrmsg ifa = {
      .ifa_family = AF_INET, .ifa_prefixlen = (unsigned char)prefix_len, .ifa_index = index};
  req_init(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof(ifa));
  attr_put(&r, IFA_LOCAL, &addr, sizeof(addr));
  attr_put(&r, IFA_ADDRESS, &addr, sizeof(addr));
  nl_call(fd, &r, "add address");

  ifi.ifi_flags = IFF_UP;
  ifi.ifi_change = IFF_UP;
  req_init(&r, RTM_SETLINK, 0, &ifi, sizeof(ifi));
  nl_call(fd, &r, "set up");
  close(fd);
  return 0;
}

static int cmd_del(const char* netns_path, const char* ifname) {
  const int ns_fd = open_netns(netns_path);
  if (setns(ns_fd, CLONE_NEWNET) < 0) die("setns", errno);
  close(ns_fd);
  const int fd = nl_open();
  struct Request r;
  struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
  req_init(&r, RTM_DELLINK, 0, &ifi, sizeof(ifi));
  attr_put(&r, IFLA_IFNAME, ifname, strlen(ifname) + 1);
  nl_call(fd, &r, "delete link");
  close(fd);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 7 && strcmp(argv[1], "add") == 0) {
    return cmd_add(kMoveInCreate, argv[2], argv[3], argv[4], argv[5], argv[6]);
  }
  if (argc == 7 && strcmp(argv[1], "add-move") == 0) {
    return cmd_add(kMoveSeparately, argv[2], argv[3], argv[4], argv[5], argv[6]);
  }
  if (argc == 4 && strcmp(argv[1], "del") == 0) {
    return cmd_del(argv[2], argv[3]);
  }
  fprintf(stderr,
          "usage: floor add|add-move PARENT NETNS_PATH TMP_NAME IFNAME A.B.C.D/LEN\n"
          "       floor del NETNS_PATH IFNAME\n");
  return 2;
}
