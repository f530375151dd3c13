// unit.install: the flat file `ipoib install` writes makes the seed's NAD, unchanged, use the
// cluster store: read back by the IPAM's own loader (load_ipam_config) and by the plugin's
// network-file reader, from the paths the IPAM searches, under a temporary root.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "ipoib/install/install.h"
#include "ipoib/ipam/config.h"
#include "ipoib/plugin/network_file.h"
#include "tests/unit/install/install_test_support.h"

using install_test::slurp;
using install_test::TempDir;
using ipoib::install::parse_install_args;
using ipoib::ipam::Datastore;

namespace {

void write_file(const std::string& path, const std::string& text, mode_t mode) {
  { std::ofstream(path) << text; }
  REQUIRE(::chmod(path.c_str(), mode) == 0);
}

// The IPAM's standard flat-file paths, each under `root` (what the plugin on that node sees).
ipoib::ipam::ConfigSources sources_under(const std::string& root) {
  ipoib::ipam::ConfigSources src;
  for (std::string& p : src.flat_file_paths) {
    p = root + p;
  }
  src.hostname = [] { return std::string("node-a"); };
  src.getenv = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
  return src;
}

// The seed's NAD (conf/nad/jarvice-ipoib.yaml; tests/scripts/conf_test.py holds it verbatim).
std::string seed_nad() { return slurp(std::string(IPOIB_CONF_DIR) + "/nad/jarvice-ipoib.yaml"); }

// A mounted Secret: ca.crt, tls.crt, tls.key and password, the secret ones at `secret_mode`.
void make_secret(const std::string& dir, mode_t secret_mode) {
  write_file(dir + "/ca.crt", "CA\n", 0644);
  write_file(dir + "/tls.crt", "CERT\n", 0644);
  write_file(dir + "/tls.key", "KEY\n", secret_mode);
  write_file(dir + "/password", "pw\n", secret_mode);
}

std::string run(const ipoib::install::Options& o, bool expect_ok = true) {
  std::ostringstream out;
  const auto r = ipoib::install::run_install(o, out);
  INFO(out.str());
  if (expect_ok) {
    INFO((r.ok() ? std::string() : r.error().msg()));
    REQUIRE(r.ok());
    return out.str();
  }
  REQUIRE_FALSE(r.ok());
  return r.error().msg();
}

}  // namespace

TEST_CASE("install --etcd-endpoints --etcd-tls-dir: the seed's NAD opens the etcd store") {
  TempDir root;
  TempDir secret;
  make_secret(secret.path, 0600);
  const std::string host = "https://10.0.0.1:2379,https://10.0.0.2:2379";
  auto o = parse_install_args({"--root", root.path, "--flat-file-only", "--etcd-endpoints", host,
                               "--etcd-tls-dir", secret.path, "--etcd-username", "ipam",
                               "--node-slice-size", "/26"});
  REQUIRE(o.ok());
  run(*o);
  const std::string flat = root.path + "/etc/cni/net.d/whereabouts.d/whereabouts.conf";
  struct stat st {};
  REQUIRE(::stat(flat.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  const std::string etcd_dir = root.path + std::string(ipoib::install::kEtcdTlsHostDir);
  for (const char* name : {"ca.crt", "tls.crt", "tls.key", "password"}) {
    INFO(name);
    CHECK(slurp(etcd_dir + "/" + name) == slurp(secret.path + "/" + name));
    REQUIRE(::stat((etcd_dir + "/" + name).c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
  }

  // The seed's IPAM section, unchanged, with the flat file the IPAM finds on the node.
  const auto seed_ipam =
      nlohmann::json::parse(R"({"type": "whereabouts", "range": "192.168.0.0/24"})");
  auto cfg = ipoib::ipam::load_ipam_config(seed_ipam, sources_under(root.path));
  INFO((cfg.ok() ? std::string() : cfg.error().msg()));
  REQUIRE(cfg.ok());
  CHECK(cfg->flat_file == flat);
  const auto& loc = cfg->location;
  CHECK(loc.datastore == Datastore::kEtcd);
  CHECK(loc.cluster.etcd.etcd_host == host);
  CHECK(loc.cluster.etcd.etcd_username == "ipam");
  const std::string node_dir(ipoib::install::kEtcdTlsHostDir);
  CHECK(loc.cluster.etcd.etcd_key_file == node_dir + "/tls.key");
  CHECK(loc.cluster.etcd.etcd_cert_file == node_dir + "/tls.crt");
  CHECK(loc.cluster.etcd.etcd_ca_cert_file == node_dir + "/ca.crt");
  CHECK(loc.cluster.etcd.etcd_password_file == node_dir + "/password");
  CHECK(loc.cluster.node_slice_prefix == 26);

  // The same through the plugin's reader of the seed's NAD file itself.
  auto entries = ipoib::plugin::read_network_file(seed_nad(), sources_under(root.path));
  INFO((entries.ok() ? std::string() : entries.error().msg()));
  REQUIRE(entries.ok());
  REQUIRE(entries->size() == 1);
  REQUIRE(entries->front().ipam);
  CHECK(entries->front().ipam->location.datastore == Datastore::kEtcd);
  CHECK(entries->front().ipam->location.cluster.etcd.etcd_host == host);

  // Idempotent; then --uninstall removes exactly what it wrote.
  const std::string again = run(*o);
  CHECK_THAT(again, Catch::Contains("up to date: " + flat));
  CHECK_THAT(again, Catch::Contains("up to date: " + etcd_dir + "/tls.key"));
  o->uninstall = true;
  run(*o);
  CHECK(::access(flat.c_str(), F_OK) != 0);
  CHECK(::access((etcd_dir + "/tls.key").c_str(), F_OK) != 0);
  CHECK(::access(etcd_dir.c_str(), F_OK) != 0);
}

TEST_CASE("install: without a flat file the seed's NAD stays on the node-local store") {
  TempDir root;
  const auto seed_ipam =
      nlohmann::json::parse(R"({"type": "whereabouts", "range": "192.168.0.0/24"})");
  auto cfg = ipoib::ipam::load_ipam_config(seed_ipam, sources_under(root.path));
  REQUIRE(cfg.ok());
  CHECK(cfg->location.datastore == Datastore::kLocal);
  CHECK(cfg->flat_file.empty());
}

TEST_CASE("install --etcd-tls-dir refuses a Secret whose key or password others can read") {
  TempDir root;
  TempDir secret;
  make_secret(secret.path, 0644);  // a Secret volume's default mode
  auto o = parse_install_args({"--root", root.path, "--flat-file-only", "--etcd-endpoints",
                               "https://10.0.0.1:2379", "--etcd-tls-dir", secret.path,
                               "--etcd-username", "ipam"});
  REQUIRE(o.ok());
  const std::string msg = run(*o, false);
  CHECK_THAT(msg,
             Catch::Contains(secret.path + "/tls.key") && Catch::Contains("defaultMode: 0600"));
  // Nothing was written: no flat file naming a store that would refuse its files.
  CHECK(::access((root.path + "/etc/cni/net.d/whereabouts.d").c_str(), F_OK) != 0);

  REQUIRE(::chmod((secret.path + "/tls.key").c_str(), 0400) == 0);
  CHECK_THAT(run(*o, false), Catch::Contains(secret.path + "/password"));
  REQUIRE(::chmod((secret.path + "/password").c_str(), 0600) == 0);
  run(*o);
}

TEST_CASE("install --etcd-tls-dir: a password needs the user it belongs to") {
  TempDir root;
  TempDir secret;
  make_secret(secret.path, 0600);
  auto o = parse_install_args({"--root", root.path, "--flat-file-only", "--etcd-endpoints",
                               "https://10.0.0.1:2379", "--etcd-tls-dir", secret.path});
  REQUIRE(o.ok());
  CHECK_THAT(run(*o, false), Catch::Contains("--etcd-username"));
}

TEST_CASE("install --uninstall keeps a flat file it did not write") {
  TempDir root;
  auto o = parse_install_args({"--root", root.path, "--flat-file-only", "--etcd-endpoints",
                               "http://10.0.0.1:2379", "--etcd-username", "ipam",
                               "--etcd-password-file", "/etc/ipoib/etcd-password"});
  REQUIRE(o.ok());
  run(*o);
  const std::string flat = root.path + "/etc/cni/net.d/whereabouts.d/whereabouts.conf";
  const auto doc = nlohmann::json::parse(slurp(flat));
  CHECK(doc["etcd_password_file"] == "/etc/ipoib/etcd-password");
  CHECK_FALSE(doc.contains("etcd_password"));  // the password itself never lands in the file
  write_file(flat, slurp(flat) + " ", 0600);   // edited by someone else
  o->uninstall = true;
  CHECK_THAT(run(*o), Catch::Contains("kept " + flat));
  CHECK(::access(flat.c_str(), F_OK) == 0);
}

TEST_CASE("install --dry-run shows the flat file and changes nothing") {
  TempDir root;
  auto o =
      parse_install_args({"--root", root.path, "--flat-file-only", "--dry-run", "--etcd-endpoints",
                          "http://10.0.0.1:2379", "--node-slice-size", "24"});
  REQUIRE(o.ok());
  const std::string out = run(*o);
  CHECK_THAT(out, Catch::Contains("would write") &&
                      Catch::Contains("\"node_slice_size\": \"/24\"") &&
                      Catch::Contains("\"etcd_host\": \"http://10.0.0.1:2379\""));
  CHECK(::access((root.path + "/etc").c_str(), F_OK) != 0);
}

TEST_CASE("install: cluster-store options that do not fit are usage errors") {
  struct Case {
    std::vector<std::string_view> args;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {{"--node-slice-size", "/26"}, "need --etcd-endpoints"},
      {{"--etcd-endpoints", "http://a:2379", "--node-slice-size", "0x1a"}, "prefix length"},
      {{"--etcd-endpoints", "http://a:2379", "--node-slice-size", "/129"}, "prefix length"},
      {{"--etcd-endpoints", "http://a:2379", "--etcd-password-file", "/p"}, "--etcd-username"},
      {{"--etcd-endpoints", "http://a:2379", "--etcd-username", "u", "--etcd-password-file",
        "rel/p"},
       "absolute"},
  };
  for (const Case& c : cases) {
    INFO(c.needle);
    auto o = parse_install_args(c.args);
    REQUIRE_FALSE(o.ok());
    CHECK(o.error().code() == ipoib::ErrorCode::kInvalidEnvironment);
    CHECK_THAT(o.error().msg(), Catch::Contains(c.needle));
  }
  auto ca = parse_install_args({"--etcd-endpoints", "http://a:2379", "--etcd-ca-cert-file", "/c"});
  REQUIRE(ca.ok());
  CHECK(ca->store->etcd_ca_file == "/c");
}
