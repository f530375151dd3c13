// other_live_netns on real files: what counts as another live network namespace (no root).
#include "ipoib/ipam/attachment_liveness.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "test_support.h"

using ipoib::ipam::other_live_netns;

TEST_CASE("another live netns: only an nsfs network namespace other than the current one") {
  ipam_test::TempDir tmp;
  const std::string self = "/proc/self/ns/net";
  CHECK(other_live_netns(self, ""));                          // alive, and no current netns
  CHECK(other_live_netns(self, tmp.path() + "/gone"));        // alive; current names none
  CHECK_FALSE(other_live_netns(self, self));                  // the same namespace again
  CHECK_FALSE(other_live_netns("", self));                    // recorded before netns was kept
  CHECK_FALSE(other_live_netns(tmp.path() + "/gone", self));  // gone (kubelet after reboot)
  CHECK_FALSE(other_live_netns("relative/path", self));
  CHECK_FALSE(other_live_netns("/proc/self/ns/mnt", self));  // a namespace, not a network one
  const std::string file = tmp.path() + "/file";
  ipam_test::write_file(file, "x");
  CHECK_FALSE(other_live_netns(file, self));
  // A FIFO: answered at once (O_PATH never waits for a writer).
  const std::string fifo = tmp.path() + "/fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_FALSE(other_live_netns(fifo, self));
}
