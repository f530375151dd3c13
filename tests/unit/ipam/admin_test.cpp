#include "ipoib/ipam/admin.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <sstream>

#include "ipoib/ipam/store.h"
#include "test_support.h"

using namespace ipoib;
using namespace ipoib::ipam;
using ipam_test::TempDir;

namespace {

void seed(const std::string& dir) {
  auto store = Store::open(dir, CreateMode::kCreate);
  REQUIRE(store.ok());
  auto lock = (*store)->lock(1000);
  REQUIRE(lock.ok());
  PoolData p;
  p.network_name = "blue";
  auto r = parse_range({.range = "10.0.0.0/29"});
  REQUIRE(r.ok());
  p.upsert_range("10.0.0.0/29", *r);
  p.insert({*IpAddress::parse("10.0.0.1"), "10.0.0.0/29", "n", "c1", "net1", "ns/a", 0});
  p.insert({*IpAddress::parse("10.0.0.2"), "10.0.0.0/29", "n", "c1", "net2", "ns/a", 0});
  p.insert({*IpAddress::parse("10.0.0.3"), "10.0.0.0/29", "n", "c2", "net1", "", 0});
  REQUIRE((*store)->write_pool(*lock, p).ok());
  PoolData d;
  auto r6 = parse_range({.range = "fd00::/64"});
  d.upsert_range("fd00::/64", *r6);
  REQUIRE((*store)->write_pool(*lock, d).ok());
}

int run(std::vector<std::string> args, std::string& out, std::string& err) {
  std::ostringstream o, e;
  const int rc = admin_run(args, o, e);
  out = o.str();
  err = e.str();
  return rc;
}

}  // namespace

TEST_CASE("list as a table and as JSON with free counts") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/s";
  seed(dir);
  std::string out, err;
  REQUIRE(run({"list", "--store-dir", dir}, out, err) == 0);
  CHECK_THAT(
      out, Catch::Contains("pool blue") && Catch::Contains("10.0.0.3") && Catch::Contains("ns/a") &&
               Catch::Contains("free 3") && Catch::Contains("1970-01-01T00:00:00Z") &&
               Catch::Contains("pool (default)") && Catch::Contains("free 18446744073709551614"));
  REQUIRE(run({"list", "--json", "--store-dir", dir}, out, err) == 0);
  const auto doc = nlohmann::json::parse(out);
  REQUIRE(doc["pools"].size() == 2);
  const auto& blue = doc["pools"][1]["network_name"] == "blue" ? doc["pools"][1] : doc["pools"][0];
  CHECK(blue["ranges"][0]["reserved"] == 3);
  CHECK(blue["ranges"][0]["free"] == 3);
  CHECK(blue["reservations"][2]["container_id"] == "c2");
}

TEST_CASE("release by IP and by container") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/s";
  seed(dir);
  std::string out, err;
  REQUIRE(run({"release", "--ip", "10.0.0.3", "--store-dir", dir}, out, err) == 0);
  CHECK_THAT(out, Catch::Contains("released 10.0.0.3"));
  CHECK(run({"release", "--ip", "10.0.0.3", "--store-dir", dir}, out, err) == 1);
  CHECK_THAT(err, Catch::Contains("no reservation matched"));
  REQUIRE(run({"release", "--container", "c1", "--ifname", "net2", "--store-dir", dir}, out, err) ==
          0);
  CHECK_THAT(out, Catch::Contains("10.0.0.2") && !Catch::Contains("10.0.0.1"));
  REQUIRE(run({"release", "--container", "c1", "--store-dir", dir}, out, err) == 0);
  REQUIRE(run({"list", "--json", "--store-dir", dir}, out, err) == 0);
  const auto listed =
      nlohmann::json::parse(out);  // named: a temporary's member dies before the loop
  for (const auto& p : listed["pools"]) CHECK(p["reservations"].empty());
}

TEST_CASE("usage errors and a missing store") {
  TempDir tmp;
  std::string out, err;
  CHECK(run({}, out, err) == 2);
  CHECK(run({"frobnicate"}, out, err) == 2);
  CHECK(run({"release"}, out, err) == 2);
  CHECK(run({"release", "--ip", "1.2.3.4", "--container", "x"}, out, err) == 2);
  CHECK(run({"list", "--store-dir"}, out, err) == 2);
  CHECK(run({"list", "--store-dir", "relative"}, out, err) == 1);
  REQUIRE(run({"list", "--store-dir", tmp.path() + "/none"}, out, err) == 0);
  CHECK_THAT(out, Catch::Contains("no pools in"));
  CHECK(::access((tmp.path() + "/none").c_str(), F_OK) != 0);  // nothing was created
  CHECK(run({"release", "--ip", "1.2.3.4", "--store-dir", tmp.path() + "/none"}, out, err) == 1);
  CHECK_THAT(err, Catch::Contains("no reservation matched"));
  // A corrupt pool is reported, and list fails.
  const std::string dir = tmp.path() + "/s";
  seed(dir);
  ipam_test::write_file(dir + "/pool-blue", "garbage\n");
  CHECK(run({"list", "--store-dir", dir}, out, err) == 1);
  CHECK_THAT(err, Catch::Contains("corrupt") && Catch::Contains("pool-blue"));
}
