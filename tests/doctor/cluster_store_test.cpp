// doctor.cluster_store: `ipoib doctor`'s cluster-store rows against real etcd members
// (tests/etcd/etcd_cluster.h): the flat file `ipoib install` writes, every endpoint, a leader,
// the credentials, the key and password file modes. Exit 77 only when etcd is not installed.
#define CATCH_CONFIG_RUNNER
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "ipoib/doctor/doctor.h"
#include "ipoib/install/install.h"
#include "tests/doctor/doctor_test_support.h"
#include "tests/etcd/etcd_cluster.h"
#include "tests/fixtures/fixture_tree.h"

using namespace ipoib;
using doctor::CheckResult;
using doctor::CheckStatus;
using doctor_test::find;
using ipoib::testing::build_node;
using ipoib::testing::FixtureTree;
using ipoib::testing::NodeSpec;

namespace {

constexpr const char* kFlat = "etc/cni/net.d/whereabouts.d/whereabouts.conf";

std::vector<CheckResult> run_doctor(const FixtureTree& tree) {
  doctor::DoctorOptions options;
  options.master = "ib0";
  options.pkey = 0x8001;
  return doctor_test::run_on(tree, options);
}

// A node (Multus present: part of a cluster) whose flat file is `flat`.
void node_with_flat_file(const FixtureTree& tree, const nlohmann::json& flat) {
  build_node(tree, NodeSpec{});
  tree.file(kFlat, flat.dump() + "\n", 0600);
}

CheckStatus status_of(const std::vector<CheckResult>& results, const std::string& id) {
  return find(results, id).status;
}

}  // namespace

TEST_CASE("a cluster node whose flat file names a healthy etcd passes every check") {
  etcd_test::Cluster& c = etcd_test::started_member();
  FixtureTree tree;
  node_with_flat_file(tree, {{"datastore", "etcd"}, {"etcd_host", c.endpoints_csv()}});
  const auto results = run_doctor(tree);
  INFO(doctor::render_table(results));
  for (const CheckResult& r : results) {
    if (r.id == "mode.connected" || r.id == "mtu.fits") {
      continue;
    }
    INFO(r.id);
    CHECK(r.status == CheckStatus::kPass);
  }
  CHECK_THAT(find(results, "store.cluster").finding,
             Catch::Contains("datastore etcd") && Catch::Contains(c.endpoints_csv()) &&
                 Catch::Contains("/etc/cni/net.d/whereabouts.d/whereabouts.conf"));
  CHECK_THAT(find(results, "etcd.reachable").finding, Catch::Contains("1/1 answered"));
  CHECK_THAT(find(results, "etcd.quorum").finding, Catch::Contains("leader "));
  CHECK_THAT(find(results, "etcd.auth").finding, Catch::Contains("without authentication"));
  CHECK(doctor::exit_status(results) == 0);
}

TEST_CASE("etcd endpoints: one dead is a WARN, all dead a FAIL naming each") {
  etcd_test::Cluster& c = etcd_test::started_member();
  const std::string dead = etcd_test::dead_url();
  FixtureTree tree;
  SECTION("one of two answers") {
    node_with_flat_file(tree,
                        {{"datastore", "etcd"}, {"etcd_host", dead + "," + c.endpoints_csv()}});
    const auto results = run_doctor(tree);
    CHECK(status_of(results, "etcd.reachable") == CheckStatus::kWarn);
    CHECK_THAT(find(results, "etcd.reachable").finding,
               Catch::Contains("1/2 answered") && Catch::Contains(dead));
    CHECK(status_of(results, "etcd.quorum") == CheckStatus::kPass);
    CHECK(status_of(results, "etcd.auth") == CheckStatus::kPass);
  }
  SECTION("none answers") {
    node_with_flat_file(tree, {{"datastore", "etcd"}, {"etcd_host", dead}});
    const auto results = run_doctor(tree);
    CHECK(status_of(results, "etcd.reachable") == CheckStatus::kFail);
    CHECK_THAT(find(results, "etcd.reachable").finding,
               Catch::Contains(dead) && Catch::Contains("code 11"));
    CHECK(status_of(results, "etcd.quorum") == CheckStatus::kSkip);
    CHECK(status_of(results, "etcd.auth") == CheckStatus::kSkip);
    CHECK(doctor::exit_status(results) == 1);
  }
}

TEST_CASE("etcd quorum: a member that lost its majority reports no leader") {
  etcd_test::Cluster c(3);
  REQUIRE(c.start());
  FixtureTree tree;
  node_with_flat_file(tree, {{"datastore", "etcd"}, {"etcd_host", c.client_url(0)}});
  CHECK(status_of(run_doctor(tree), "etcd.quorum") == CheckStatus::kPass);
  c.kill(1);
  c.kill(2);
  // The survivor forgets its leader within an election time-out or so.
  CheckStatus quorum = CheckStatus::kPass;
  std::vector<CheckResult> results;
  for (int i = 0; i < 40 && quorum != CheckStatus::kFail; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    results = run_doctor(tree);
    quorum = status_of(results, "etcd.quorum");
  }
  INFO(doctor::render_table(results));
  CHECK(quorum == CheckStatus::kFail);
  CHECK(status_of(results, "etcd.reachable") == CheckStatus::kPass);
  CHECK_THAT(find(results, "etcd.quorum").finding, Catch::Contains("no quorum"));
}

TEST_CASE("etcd credentials: the configured user and password file, read by the client's rule") {
  etcd_test::Cluster c(1);
  REQUIRE(c.start());
  std::string out;
  REQUIRE(c.etcdctl({"user", "add", "root", "--new-user-password=rootpw", "--interactive=false"},
                    &out) == 0);
  REQUIRE(c.etcdctl({"auth", "enable"}, &out) == 0);
  FixtureTree tree;
  const nlohmann::json base = {{"datastore", "etcd"}, {"etcd_host", c.endpoints_csv()}};
  SECTION("right password") {
    nlohmann::json flat = base;
    flat["etcd_username"] = "root";
    flat["etcd_password_file"] = "/etc/ipoib/etcd-password";
    node_with_flat_file(tree, flat);
    tree.file("etc/ipoib/etcd-password", "rootpw\n", 0600);
    const auto results = run_doctor(tree);
    INFO(doctor::render_table(results));
    CHECK(status_of(results, "etcd.files") == CheckStatus::kPass);
    CHECK(status_of(results, "etcd.reachable") == CheckStatus::kPass);
    CHECK(status_of(results, "etcd.auth") == CheckStatus::kPass);
    CHECK_THAT(find(results, "etcd.auth").finding, Catch::Contains("as etcd user \"root\""));

    // The same password file readable by its group: refused by the client's rule, nothing tried.
    tree.file("etc/ipoib/etcd-password", "rootpw\n", 0640);
    const auto loose = run_doctor(tree);
    CHECK(status_of(loose, "etcd.files") == CheckStatus::kFail);
    CHECK_THAT(find(loose, "etcd.files").finding,
               Catch::Contains("/etc/ipoib/etcd-password") && Catch::Contains("0640"));
    CHECK_THAT(find(loose, "etcd.files").fix,
               Catch::Contains("chmod 600 /etc/ipoib/etcd-password"));
    CHECK(status_of(loose, "etcd.reachable") == CheckStatus::kSkip);
  }
  SECTION("wrong password") {
    nlohmann::json flat = base;
    flat["etcd_username"] = "root";
    flat["etcd_password"] = "nope";
    node_with_flat_file(tree, flat);
    const auto results = run_doctor(tree);
    INFO(doctor::render_table(results));
    CHECK(status_of(results, "etcd.auth") == CheckStatus::kFail);
    CHECK_THAT(find(results, "etcd.auth").finding, Catch::Contains("authentication"));
    // The member answered (it refused the password): reachable, not down.
    CHECK(status_of(results, "etcd.reachable") == CheckStatus::kPass);
    CHECK_THAT(find(results, "etcd.reachable").finding, Catch::Contains("refused the credentials"));
  }
  SECTION("no user configured") {
    node_with_flat_file(tree, base);
    const auto results = run_doctor(tree);
    CHECK(status_of(results, "etcd.auth") == CheckStatus::kFail);
    CHECK_THAT(find(results, "etcd.auth").fix, Catch::Contains("etcd_username"));
  }
}

TEST_CASE("TLS: the Secret `ipoib install` copies to the node is what the doctor checks") {
  etcd_test::TempDir dir("doctor-tls");
  etcd_test::Pki pki(dir.path());
  REQUIRE(pki.make());
  etcd_test::Cluster c(1, etcd_test::mutual_tls_options(pki));
  REQUIRE(c.start());

  // The Secret as the DaemonSet mounts it: ca.crt, tls.crt, tls.key at defaultMode 0600.
  const std::string secret = dir.path() + "/secret";
  REQUIRE(::mkdir(secret.c_str(), 0700) == 0);
  for (const auto& [from, to] :
       {std::pair{pki.ca(), "ca.crt"}, std::pair{pki.client_cert(), "tls.crt"},
        std::pair{pki.client_key(), "tls.key"}}) {
    std::string install = "install -m 0600 '";
    install += from;
    install += "' '" + secret + "/" + to + "'";
    REQUIRE(etcd_test::run(install) == 0);
  }
  FixtureTree tree;
  build_node(tree, NodeSpec{});
  auto opts =
      install::parse_install_args({"--root", tree.path(), "--flat-file-only", "--etcd-endpoints",
                                   c.endpoints_csv(), "--etcd-tls-dir", secret});
  REQUIRE(opts.ok());
  std::ostringstream log;
  const Status installed = install::run_install(*opts, log);
  INFO(log.str());
  REQUIRE(installed.ok());

  auto results = run_doctor(tree);
  INFO(doctor::render_table(results));
  for (const char* id :
       {"store.cluster", "etcd.files", "etcd.reachable", "etcd.quorum", "etcd.auth"}) {
    INFO(id);
    CHECK(status_of(results, id) == CheckStatus::kPass);
  }
  CHECK_THAT(find(results, "etcd.files").finding,
             Catch::Contains("etcd_key_file /etc/cni/net.d/whereabouts.d/etcd/tls.key"));

  // Someone loosened the node's copy of the key: the plugin would refuse it, so does the doctor.
  REQUIRE(::chmod(tree.abs("etc/cni/net.d/whereabouts.d/etcd/tls.key").c_str(), 0644) == 0);
  results = run_doctor(tree);
  CHECK(status_of(results, "etcd.files") == CheckStatus::kFail);
  CHECK_THAT(find(results, "etcd.files").fix,
             Catch::Contains("chmod 600 /etc/cni/net.d/whereabouts.d/etcd/tls.key"));
  CHECK(doctor::exit_status(results) == 1);
}

int main(int argc, char** argv) {
  if (const int skip = etcd_test::skip_unless_binaries_present()) {
    return skip;
  }
  return Catch::Session().run(argc, argv);
}
