// The etcd client against real etcd members (tests/etcd/etcd_cluster.h): KV and Txn semantics,
// failover, time-outs, TLS and authentication. Exits 77 only when etcd/etcdctl are missing.
#define CATCH_CONFIG_RUNNER
#include "ipoib/etcd/client.h"

#include <signal.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <memory>

#include "tests/etcd/etcd_cluster.h"

using namespace ipoib::etcd;
using ipoib::ErrorCode;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

std::unique_ptr<Client> make_client(const std::string& endpoints,
                                    milliseconds call = milliseconds(1000),
                                    milliseconds op = milliseconds(10000), ConfigKeys keys = {}) {
  keys.etcd_host = endpoints;
  auto cfg = config_from(keys);
  REQUIRE(cfg.ok());
  cfg->call_timeout = call;
  cfg->operation_timeout = op;
  auto c = Client::create(std::move(*cfg));
  if (!c.ok()) {
    FAIL(c.error().msg());
  }
  return std::move(*c);
}

std::string unique_prefix(const char* what) {
  static int n = 0;
  return std::string("/test/") + what + "/" + std::to_string(::getpid()) + "-" +
         std::to_string(++n) + "/";
}

TxnRequest create_if_absent(const std::string& key, const std::string& value) {
  TxnRequest t;
  t.compare.push_back(Compare::absent(key));
  t.success.emplace_back(PutRequest{key, value});
  t.failure.emplace_back(RangeRequest::single(key));
  return t;
}

double seconds_since(steady_clock::time_point t) {
  return std::chrono::duration<double>(steady_clock::now() - t).count();
}

}  // namespace

TEST_CASE("put, range and delete_range: values, revisions, prefixes, limit") {
  auto client = make_client(etcd_test::started_member().endpoints_csv());
  const std::string p = unique_prefix("kv");
  const std::string binary_key = p + std::string("b\0\xff", 3);
  auto put = client->put(PutRequest{binary_key, std::string("\0\x01\xfe", 3)});
  REQUIRE(put.ok());
  const auto rev1 = put->header.revision;
  CHECK(rev1 > 0);
  auto got = client->range(RangeRequest::single(binary_key));
  REQUIRE(got.ok());
  REQUIRE(got->kvs.size() == 1);
  CHECK(got->kvs[0].value == std::string("\0\x01\xfe", 3));
  CHECK(got->kvs[0].create_revision == rev1);
  CHECK(got->kvs[0].mod_revision == rev1);
  CHECK(got->kvs[0].version == 1);

  PutRequest again{binary_key, "second"};
  again.prev_kv = true;
  auto put2 = client->put(again);
  REQUIRE(put2.ok());
  REQUIRE(put2->prev_kv.has_value());
  CHECK(put2->prev_kv->value == std::string("\0\x01\xfe", 3));
  got = client->range(RangeRequest::single(binary_key));
  REQUIRE(got.ok());
  CHECK(got->kvs.at(0).version == 2);
  CHECK(got->kvs.at(0).create_revision == rev1);
  CHECK(got->kvs.at(0).mod_revision == put2->header.revision);
  // Reading at an older revision sees the old value.
  RangeRequest old = RangeRequest::single(binary_key);
  old.revision = rev1;
  got = client->range(old);
  REQUIRE(got.ok());
  CHECK(got->kvs.at(0).value == std::string("\0\x01\xfe", 3));

  CHECK(client->range(RangeRequest::single(p + "missing"))->kvs.empty());

  for (int i = 0; i < 5; ++i) {
    REQUIRE(client->put(PutRequest{p + "list/" + std::to_string(i), "v" + std::to_string(i)}).ok());
  }
  REQUIRE(client->put(PutRequest{p + "listx", "outside"}).ok());  // shares the prefix minus '/'
  RangeRequest list = RangeRequest::prefix(p + "list/");
  auto all = client->range(list);
  REQUIRE(all.ok());
  CHECK(all->kvs.size() == 5);
  CHECK(all->count == 5);
  CHECK_FALSE(all->more);
  CHECK(all->kvs.front().key == p + "list/0");
  list.limit = 2;
  auto page = client->range(list);
  REQUIRE(page.ok());
  CHECK(page->kvs.size() == 2);
  CHECK(page->count == 5);
  CHECK(page->more);
  // The next page starts after the last key returned.
  RangeRequest next = list;
  next.key = page->kvs.back().key + std::string(1, '\0');
  auto page2 = client->range(next);
  REQUIRE(page2.ok());
  CHECK(page2->kvs.at(0).key == p + "list/2");
  list.limit = 0;
  list.keys_only = true;
  auto keys = client->range(list);
  REQUIRE(keys.ok());
  CHECK(keys->kvs.at(0).value.empty());
  list.keys_only = false;
  list.count_only = true;
  auto count = client->range(list);
  REQUIRE(count.ok());
  CHECK(count->kvs.empty());
  CHECK(count->count == 5);

  auto del = client->delete_range(DeleteRangeRequest::prefix(p + "list/"));
  REQUIRE(del.ok());
  CHECK(del->deleted == 5);
  CHECK(client->range(RangeRequest::single(p + "listx"))->kvs.size() == 1);
  CHECK(client->delete_range(DeleteRangeRequest::single(p + "listx"))->deleted == 1);
}

TEST_CASE("txn: create-if-absent, mod_revision CAS, value and version compares") {
  auto client = make_client(etcd_test::started_member().endpoints_csv());
  const std::string key = unique_prefix("txn") + "addr/10.0.0.1";

  auto first = client->txn(create_if_absent(key, "owner-a"), TxnRetry::kNotIdempotent);
  REQUIRE(first.ok());
  CHECK(first->succeeded);
  REQUIRE(first->responses.size() == 1);
  CHECK(std::holds_alternative<PutResponse>(first->responses[0]));

  auto second = client->txn(create_if_absent(key, "owner-b"), TxnRetry::kNotIdempotent);
  REQUIRE(second.ok());
  CHECK_FALSE(second->succeeded);
  const auto& current = std::get<RangeResponse>(second->responses.at(0)).kvs.at(0);
  CHECK(current.value == "owner-a");

  // CAS on mod_revision: the current revision wins once, a stale one never.
  TxnRequest cas;
  cas.compare.push_back(Compare::mod_revision_is(key, current.mod_revision));
  cas.success.emplace_back(PutRequest{key, "owner-c"});
  auto won = client->txn(cas, TxnRetry::kNotIdempotent);
  REQUIRE(won.ok());
  CHECK(won->succeeded);
  auto stale = client->txn(cas, TxnRetry::kNotIdempotent);
  REQUIRE(stale.ok());
  CHECK_FALSE(stale->succeeded);
  CHECK(stale->responses.empty());
  CHECK(client->range(RangeRequest::single(key))->kvs.at(0).value == "owner-c");

  // VALUE / VERSION with the other results; delete in the success branch.
  TxnRequest t;
  Compare value = Compare::value_is(key, "owner-a");
  value.result = CompareResult::kNotEqual;
  t.compare.push_back(value);
  t.compare.push_back({key, CompareTarget::kVersion, CompareResult::kGreater, 1, {}});
  t.compare.push_back({key, CompareTarget::kVersion, CompareResult::kLess, 3, {}});
  t.compare.push_back({key, CompareTarget::kCreate, CompareResult::kGreater, 0, {}});
  t.success.emplace_back(DeleteRangeRequest::single(key));
  t.success.emplace_back(RangeRequest::single(key));
  auto deleted = client->txn(t, TxnRetry::kNotIdempotent);
  REQUIRE(deleted.ok());
  CHECK(deleted->succeeded);
  REQUIRE(deleted->responses.size() == 2);
  CHECK(std::get<DeleteRangeResponse>(deleted->responses[0]).deleted == 1);
  CHECK(std::get<RangeResponse>(deleted->responses[1]).kvs.empty());
  // Now absent again: create-if-absent succeeds.
  CHECK(client->txn(create_if_absent(key, "owner-d"), TxnRetry::kNotIdempotent)->succeeded);

  // A request etcd rejects is a definite error, not a failover: no retries, no code 11.
  TxnRequest dup;
  dup.success.emplace_back(PutRequest{key, "1"});
  dup.success.emplace_back(PutRequest{key, "2"});  // "duplicate key given in txn request"
  auto rejected = client->txn(dup, TxnRetry::kNotIdempotent);
  REQUIRE_FALSE(rejected.ok());
  CHECK(rejected.error().code() == ErrorCode::kIoFailure);
  CHECK_THAT(rejected.error().msg(), Catch::Contains("duplicate key"));
  CHECK_FALSE(is_outcome_unknown(rejected.error()));
}

TEST_CASE("status reports the member, the leader and the raft index") {
  auto client = make_client(etcd_test::started_member().endpoints_csv());
  auto st = client->status();
  REQUIRE(st.ok());
  CHECK(st->is_leader());
  CHECK(st->raft_index > 0);
  CHECK(st->version == "3.4.23");
  auto one = client->status_of(0);
  REQUIRE(one.ok());
  CHECK(one->header.member_id == st->header.member_id);
}

TEST_CASE("failover: a dead first endpoint is skipped and the working one remembered") {
  const std::string dead = etcd_test::dead_url();
  const std::string eps = dead + "," + etcd_test::started_member().client_url(0);
  auto client = make_client(eps);
  CHECK(client->preferred_endpoint() == 0);
  auto r = client->put(PutRequest{unique_prefix("failover") + "k", "v"});
  REQUIRE(r.ok());
  CHECK(client->preferred_endpoint() == 1);
  // A later client of this process with the same list starts at the endpoint that worked.
  auto again = make_client(eps);
  CHECK(again->preferred_endpoint() == 1);
  auto st = client->status_of(0);
  REQUIRE_FALSE(st.ok());
  CHECK_THAT(st.error().msg(), Catch::Contains(dead) && Catch::Contains("refused"));
}

TEST_CASE("no endpoint answers: code 11 naming every endpoint, within the deadline") {
  const std::string a = etcd_test::dead_url();
  const std::string b = etcd_test::dead_url();
  auto client = make_client(a + "," + b, milliseconds(300), milliseconds(1500));
  auto t0 = steady_clock::now();
  auto r = client->range(RangeRequest::single("k"));
  double took = seconds_since(t0);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == ErrorCode::kTryAgainLater);
  CHECK_THAT(r.error().msg(),
             Catch::Contains(a) && Catch::Contains(b) && Catch::Contains("Connection refused"));
  CHECK(took >= 1.4);
  CHECK(took < 3.0);
  // A non-idempotent Txn that never reached a member is not "outcome unknown".
  auto t = client->txn(create_if_absent("k", "v"), TxnRetry::kNotIdempotent);
  REQUIRE_FALSE(t.ok());
  CHECK(t.error().code() == ErrorCode::kTryAgainLater);
  CHECK_FALSE(is_outcome_unknown(t.error()));
}

TEST_CASE("a stopped member (accepts, never answers): bounded time-out, outcome unknown") {
  etcd_test::Cluster c(1);
  REQUIRE(c.start());
  auto client = make_client(c.endpoints_csv(), milliseconds(400), milliseconds(1200));
  const std::string key = unique_prefix("stopped") + "k";
  REQUIRE(client->put(PutRequest{key, "v"}).ok());  // the connection is now kept alive
  c.signal(0, SIGSTOP);
  auto t0 = steady_clock::now();
  auto r = client->range(RangeRequest::single(key));
  double took = seconds_since(t0);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == ErrorCode::kTryAgainLater);
  CHECK_THAT(r.error().msg(), Catch::Contains(c.client_url(0)) && Catch::Contains("timed out"));
  CHECK(took < 2.5);
  // The Txn was written to the member and no answer came: the caller must be told.
  auto t = client->txn(create_if_absent(key + "2", "v"), TxnRetry::kNotIdempotent);
  REQUIRE_FALSE(t.ok());
  CHECK(is_outcome_unknown(t.error()));
  CHECK(t.error().code() == ErrorCode::kTryAgainLater);
  CHECK_THAT(t.error().msg(), Catch::Contains("outcome unknown"));
  c.signal(0, SIGCONT);
  // After the member continues, the same client works again.
  auto back = make_client(c.endpoints_csv(), milliseconds(2000), milliseconds(10000));
  CHECK(back->range(RangeRequest::single(key)).ok());
}

TEST_CASE("3 members: kill -9 the leader mid-loop, SIGSTOP a member: calls keep succeeding") {
  etcd_test::Cluster c(3);
  REQUIRE(c.start());
  const std::string p = unique_prefix("cluster");
  int leader = c.leader();
  REQUIRE(leader >= 0);

  SECTION("kill -9 the leader") {
    // The leader first in the list, so the client is talking to it when it dies.
    std::string eps = c.client_url(leader);
    for (int i = 0; i < 3; ++i) {
      if (i != leader) {
        eps += "," + c.client_url(i);
      }
    }
    auto client = make_client(eps, milliseconds(1000), milliseconds(10000));
    int acknowledged = 0;
    auto t0 = steady_clock::now();
    for (int i = 0; i < 60; ++i) {
      if (i == 20) {
        c.kill(leader);
      }
      auto r = client->put(PutRequest{p + std::to_string(i), "v"});
      if (!r.ok()) {
        FAIL("put " << i << " after the leader's death: " << r.error().msg());
      }
      // Create-if-absent marked idempotent by the caller (the key is unique to this call):
      // retried across the election instead of reported as unknown.
      auto t =
          client->txn(create_if_absent(p + "t" + std::to_string(i), "v"), TxnRetry::kIdempotent);
      if (!t.ok()) {
        FAIL("txn " << i << ": " << t.error().msg());
      }
      ++acknowledged;
    }
    CHECK(acknowledged == 60);
    CHECK(seconds_since(t0) < 30);
    auto all = client->range(RangeRequest::prefix(p));
    REQUIRE(all.ok());
    CHECK(all->count == 120);
    CHECK(client->preferred_endpoint() != 0);
    auto st = client->status();
    REQUIRE(st.ok());
    CHECK(st->leader != 0);
  }

  SECTION("SIGSTOP one member (the first endpoint)") {
    int stopped = leader;  // the worst case: the leader stops answering
    std::string eps = c.client_url(stopped);
    for (int i = 0; i < 3; ++i) {
      if (i != stopped) {
        eps += "," + c.client_url(i);
      }
    }
    c.signal(stopped, SIGSTOP);
    auto client = make_client(eps, milliseconds(500), milliseconds(10000));
    auto t0 = steady_clock::now();
    for (int i = 0; i < 20; ++i) {
      auto r = client->put(PutRequest{p + "s" + std::to_string(i), "v"});
      if (!r.ok()) {
        c.signal(stopped, SIGCONT);
        FAIL("put " << i << " with a stopped member: " << r.error().msg());
      }
      auto g = client->range(RangeRequest::single(p + "s" + std::to_string(i)));
      REQUIRE(g.ok());
      CHECK(g->kvs.size() == 1);
    }
    CHECK(seconds_since(t0) < 20);
    CHECK(client->preferred_endpoint() != 0);
    c.signal(stopped, SIGCONT);
  }

  SECTION("all members killed: code 11 within the deadline") {
    auto client = make_client(c.endpoints_csv(), milliseconds(300), milliseconds(2000));
    REQUIRE(client->put(PutRequest{p + "x", "v"}).ok());
    for (int i = 0; i < 3; ++i) {
      c.kill(i);
    }
    auto t0 = steady_clock::now();
    auto r = client->put(PutRequest{p + "y", "v"});
    double took = seconds_since(t0);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == ErrorCode::kTryAgainLater);
    for (int i = 0; i < 3; ++i) {
      CHECK_THAT(r.error().msg(), Catch::Contains(c.client_url(i)));
    }
    CHECK(took < 3.5);
  }
}

TEST_CASE("TLS: the right CA and client certificate work, a wrong CA is a clear error") {
  etcd_test::TempDir dir("etcd-tls");
  etcd_test::Pki pki(dir.path(), "good");
  etcd_test::Pki other(dir.path(), "other");
  REQUIRE(pki.make());
  REQUIRE(other.make());
  etcd_test::Cluster c(1, etcd_test::mutual_tls_options(pki));
  REQUIRE(c.start());
  REQUIRE(c.endpoints_csv().rfind("https://", 0) == 0);

  ConfigKeys keys;
  keys.etcd_cert_file = pki.client_cert();
  keys.etcd_key_file = pki.client_key();
  keys.etcd_ca_cert_file = pki.ca();
  auto client = make_client(c.endpoints_csv(), milliseconds(2000), milliseconds(5000), keys);
  const std::string key = unique_prefix("tls") + "k";
  REQUIRE(client->put(PutRequest{key, "secure"}).ok());
  CHECK(client->range(RangeRequest::single(key))->kvs.at(0).value == "secure");

  SECTION("wrong CA") {
    ConfigKeys wrong = keys;
    wrong.etcd_ca_cert_file = other.ca();
    auto w = make_client(c.endpoints_csv(), milliseconds(1000), milliseconds(2000), wrong);
    auto r = w->range(RangeRequest::single(key));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == ErrorCode::kInvalidNetworkConfig);
    CHECK_THAT(r.error().msg(), Catch::Contains("TLS handshake") &&
                                    Catch::Contains("certificate verify failed") &&
                                    Catch::Contains("etcd_ca_cert_file"));
  }
  SECTION("client certificate from another CA") {
    ConfigKeys wrong = keys;
    wrong.etcd_cert_file = other.client_cert();
    wrong.etcd_key_file = other.client_key();
    auto w = make_client(c.endpoints_csv(), milliseconds(1000), milliseconds(2000), wrong);
    auto r = w->range(RangeRequest::single(key));
    REQUIRE_FALSE(r.ok());
    INFO(r.error().msg());
    CHECK(r.error().code() == ErrorCode::kInvalidNetworkConfig);
    CHECK_THAT(r.error().msg(), Catch::Contains(c.client_url(0)));
  }
  SECTION("no client certificate") {
    ConfigKeys none;
    none.etcd_ca_cert_file = pki.ca();
    auto w = make_client(c.endpoints_csv(), milliseconds(1000), milliseconds(2000), none);
    auto r = w->range(RangeRequest::single(key));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == ErrorCode::kInvalidNetworkConfig);
  }
  SECTION("a key file others can read is refused before any connection") {
    ::chmod(pki.client_key().c_str(), 0644);
    auto cfg = config_from([&] {
      ConfigKeys k = keys;
      k.etcd_host = c.endpoints_csv();
      return k;
    }());
    REQUIRE(cfg.ok());
    auto r = Client::create(*cfg);
    ::chmod(pki.client_key().c_str(), 0600);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == ErrorCode::kInvalidNetworkConfig);
    CHECK_THAT(r.error().msg(), Catch::Contains(pki.client_key()) && Catch::Contains("chmod 600"));
  }
}

TEST_CASE("user/password authentication: token header, renewal, wrong password") {
  etcd_test::Options o;
  o.extra_args = {"--auth-token-ttl=1"};
  etcd_test::Cluster c(1, o);
  REQUIRE(c.start());
  std::string out;
  REQUIRE(c.etcdctl({"user", "add", "root", "--new-user-password=rootpw", "--interactive=false"},
                    &out) == 0);
  REQUIRE(c.etcdctl({"auth", "enable"}, &out) == 0);

  ConfigKeys keys;
  keys.etcd_username = "root";
  keys.etcd_password = "rootpw";
  auto client = make_client(c.endpoints_csv(), milliseconds(2000), milliseconds(5000), keys);
  const std::string key = unique_prefix("auth") + "k";
  REQUIRE(client->put(PutRequest{key, "v"}).ok());
  // The simple token expires after 1 s unused; the client authenticates again by itself.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  auto r = client->range(RangeRequest::single(key));
  REQUIRE(r.ok());
  CHECK(r->kvs.size() == 1);

  ConfigKeys wrong = keys;
  wrong.etcd_password = "nope";
  auto bad = make_client(c.endpoints_csv(), milliseconds(2000), milliseconds(5000), wrong);
  auto e = bad->range(RangeRequest::single(key));
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().code() == ErrorCode::kInvalidNetworkConfig);
  CHECK_THAT(e.error().msg(), Catch::Contains("authentication as etcd user \"root\" failed") &&
                                  Catch::Contains("etcd_password"));

  auto anonymous = make_client(c.endpoints_csv(), milliseconds(2000), milliseconds(5000));
  auto a = anonymous->range(RangeRequest::single(key));
  REQUIRE_FALSE(a.ok());
  CHECK(a.error().code() == ErrorCode::kInvalidNetworkConfig);
  CHECK_THAT(a.error().msg(), Catch::Contains("authentication"));
}

int main(int argc, char** argv) {
  if (const int skip = etcd_test::skip_unless_binaries_present()) {
    return skip;
  }
  return Catch::Session().run(argc, argv);
}
