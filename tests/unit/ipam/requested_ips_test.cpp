#include "ipoib/ipam/requested_ips.h"

#include <catch2/catch.hpp>

#include "test_support.h"

using namespace ipoib;
using namespace ipoib::ipam;

namespace {

cni::NetConf conf_with(const nlohmann::json& raw, const nlohmann::json& runtime = {}) {
  cni::NetConf c;
  c.raw = raw;
  c.runtime_config = runtime.is_null() ? nlohmann::json::object() : runtime;
  return c;
}

cni::CniArgs args_of(const char* text) {
  auto a = cni::parse_cni_args(text);
  REQUIRE(a.ok());
  return *a;
}

std::vector<Range> ranges_of(std::initializer_list<RangeSpec> specs) {
  std::vector<Range> out;
  for (const RangeSpec& s : specs) {
    auto r = parse_range(s);
    REQUIRE(r.ok());
    out.push_back(*r);
  }
  return out;
}

}  // namespace

TEST_CASE("nothing requested: empty, no source") {
  auto r = requested_ips(conf_with({{"name", "n"}}), args_of("K8S_POD_NAME=p"));
  REQUIRE(r.ok());
  CHECK(r->ips.empty());
  CHECK(r->source.empty());
}

TEST_CASE("CNI_ARGS IP: with or without prefix, comma-separated dual stack") {
  auto r = requested_ips(conf_with({}), args_of("IP=10.0.0.5/24, fd00::5"));
  REQUIRE(r.ok());
  CHECK(r->source == "CNI_ARGS IP");
  REQUIRE(r->ips.size() == 2);
  CHECK(r->ips[0].ip.to_string() == "10.0.0.5");
  CHECK(r->ips[0].prefix_length == 24);
  CHECK(r->ips[1].ip.to_string() == "fd00::5");
  CHECK_FALSE(r->ips[1].prefix_length);
}

TEST_CASE("precedence: runtimeConfig.ips over args.cni.ips over CNI_ARGS; others reported") {
  const nlohmann::json raw = {{"args", {{"cni", {{"ips", {"10.0.0.7"}}}}}}};
  auto r = requested_ips(conf_with(raw, {{"ips", {"10.0.0.9/24"}}}), args_of("IP=10.0.0.5"));
  REQUIRE(r.ok());
  CHECK(r->source == "runtimeConfig.ips");
  REQUIRE(r->ips.size() == 1);
  CHECK(r->ips[0].ip.to_string() == "10.0.0.9");
  CHECK(r->ignored_sources == std::vector<std::string>{"args.cni.ips", "CNI_ARGS IP"});

  auto a = requested_ips(conf_with(raw), args_of("IP=10.0.0.5"));
  REQUIRE(a.ok());
  CHECK(a->source == "args.cni.ips");
  CHECK(a->ips[0].ip.to_string() == "10.0.0.7");
}

TEST_CASE("malformed or repeated requests name the source, with the source's code") {
  auto bad_env = requested_ips(conf_with({}), args_of("IP=10.0.0.300"));
  REQUIRE_FALSE(bad_env.ok());
  CHECK(bad_env.error().code() == ErrorCode::kInvalidEnvironment);
  CHECK_THAT(bad_env.error().msg(),
             Catch::Contains("CNI_ARGS IP") && Catch::Contains("10.0.0.300"));

  auto empty_elem = requested_ips(conf_with({}), args_of("IP=10.0.0.1,,10.0.0.2"));
  REQUIRE_FALSE(empty_elem.ok());
  CHECK_THAT(empty_elem.error().msg(), Catch::Contains("empty element"));

  auto twice = requested_ips(conf_with({}, {{"ips", {"10.0.0.1", "10.0.0.1/24"}}}), {});
  REQUIRE_FALSE(twice.ok());
  CHECK(twice.error().code() == ErrorCode::kInvalidNetworkConfig);
  CHECK_THAT(twice.error().msg(), Catch::Contains("requested twice"));

  auto not_list = requested_ips(conf_with({{"args", {{"cni", {{"ips", "10.0.0.1"}}}}}}), {});
  REQUIRE_FALSE(not_list.ok());
  CHECK_THAT(not_list.error().msg(), Catch::Contains("args.cni.ips"));
}

TEST_CASE("assign_requested: each address to its range; outside, excluded, wrong prefix refused") {
  const auto ranges =
      ranges_of({{.range = "10.0.0.0/24", .exclude = {"10.0.0.8/29"}}, {.range = "fd00::/64"}});
  const std::vector<std::string> keys = {"10.0.0.0/24", "fd00::/64"};
  auto req = requested_ips(conf_with({}), args_of("IP=fd00::7,10.0.0.5/24"));
  REQUIRE(req.ok());
  auto per = assign_requested(*req, ranges, keys);
  REQUIRE(per.ok());
  REQUIRE(per->size() == 2);
  CHECK((*per)[0]->to_string() == "10.0.0.5");
  CHECK((*per)[1]->to_string() == "fd00::7");

  auto only_v4 = requested_ips(conf_with({}), args_of("IP=10.0.0.6"));
  auto per4 = assign_requested(*only_v4, ranges, keys);
  REQUIRE(per4.ok());
  CHECK((*per4)[0]->to_string() == "10.0.0.6");
  CHECK_FALSE((*per4)[1]);  // allocated as usual

  for (const char* bad :
       {"IP=10.0.1.5", "IP=10.0.0.9", "IP=10.0.0.0", "IP=10.0.0.5/16", "IP=10.0.0.5,10.0.0.6"}) {
    INFO(bad);
    auto r = requested_ips(conf_with({}), args_of(bad));
    REQUIRE(r.ok());
    auto a = assign_requested(*r, ranges, keys);
    REQUIRE_FALSE(a.ok());
    CHECK(a.error().code() == ErrorCode::kInvalidEnvironment);
    CHECK_THAT(a.error().msg(), Catch::Contains("requested address"));
  }
}

TEST_CASE("reserve_requested: free, already ours, moved, held by another attachment") {
  ipam_test::TempDir tmp;
  StoreLocation loc;
  loc.store_dir = tmp.path() + "/store";
  auto store = open_ipam_store(loc, OpenMode::kCreate);
  REQUIRE(store.ok());
  auto pool = (*store)->pool("");
  const auto range = ranges_of({{.range = "10.0.0.0/24"}}).front();
  const IpAddress five = *IpAddress::parse("10.0.0.5");
  const IpAddress six = *IpAddress::parse("10.0.0.6");
  auto run = [&](const IpAddress& ip, const char* cid) {
    return pool->transact(Access::kWrite, [&](PoolTxn& txn) -> Status {
      IPOIB_TRY(txn.use_range("10.0.0.0/24", range));
      Reservation r;
      r.range_key = "10.0.0.0/24";
      r.cni_network = "n";
      r.container_id = cid;
      r.ifname = "net1";
      return reserve_requested(txn, ip, r, "CNI_ARGS IP");
    });
  };
  auto holders = [&] {
    std::vector<std::string> out;
    REQUIRE(pool->transact(Access::kRead,
                           [&](PoolTxn& txn) -> Status {
                             IPOIB_TRY_ASSIGN(auto all, txn.reservations({}));
                             out.clear();
                             for (const auto& r : all) {
                               out.push_back(r.ip.to_string() + "=" + r.container_id);
                             }
                             return ok_status();
                           })
                .ok());
    return out;
  };
  REQUIRE(run(five, "a").ok());
  CHECK(holders() == std::vector<std::string>{"10.0.0.5=a"});
  REQUIRE(run(five, "a").ok());  // a repeated ADD: unchanged
  CHECK(holders() == std::vector<std::string>{"10.0.0.5=a"});
  auto taken = run(five, "b");
  REQUIRE_FALSE(taken.ok());
  CHECK(taken.error().code() == ErrorCode::kIpamFailure);
  CHECK_THAT(taken.error().msg(), Catch::Contains("10.0.0.5 is held by container a"));
  CHECK(holders() == std::vector<std::string>{"10.0.0.5=a"});  // nothing else handed out
  REQUIRE(run(six, "a").ok());  // the same attachment asks for another address: moved
  CHECK(holders() == std::vector<std::string>{"10.0.0.6=a"});
}
