// validate-config's store line: a local directory or the cluster store (its endpoints, its mode,
// TLS and authentication, never a password), what would refuse the cluster store on this machine,
// and the warning for a NetworkAttachmentDefinition whose IPAM keeps a node-local store.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "ipoib/plugin/network_file.h"
#include "temp_dir.h"

using namespace ipoib;

namespace {

const plugin::FilesystemProbe kExt4 = [](const std::string&) {
  return std::optional<plugin::FilesystemInfo>({"/", 0xef53});
};
const plugin::FilesystemProbe kNfs = [](const std::string& dir) {
  return std::optional<plugin::FilesystemInfo>({dir, 0x6969});
};

// The lines validate-config prints under the one ipoib network of `text`.
std::vector<std::string> describe(const std::string& text,
                                  const plugin::FilesystemProbe& probe = kExt4) {
  auto entries = plugin::read_network_file(text, ipam::ConfigSources{.flat_file_paths = {}});
  INFO(text);
  REQUIRE(entries.ok());
  REQUIRE(entries->size() == 1);
  return plugin::describe_network(entries->at(0), probe);
}

std::string conf(const std::string& ipam_keys) {
  return R"({"cniVersion":"1.0.0","name":"ib","type":"ipoib","master":"ib0","ipam":{)"
         R"("type":"whereabouts","range":"10.3.0.0/24","network_name":"blue")" +
         ipam_keys + "}}";
}

std::string nad(const std::string& config) {
  return nlohmann::json{{"apiVersion", "k8s.cni.cncf.io/v1"},
                        {"kind", "NetworkAttachmentDefinition"},
                        {"metadata", {{"name", "ib"}}},
                        {"spec", {{"config", config}}}}
      .dump();
}

std::string joined(const std::vector<std::string>& lines) {
  std::string all;
  for (const std::string& l : lines) all += l + "\n";
  return all;
}

void write(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text;
  REQUIRE(::chmod(path.c_str(), mode) == 0);
}

}  // namespace

TEST_CASE("validate-config store: a local directory, and a NAD that keeps one warns") {
  const auto local = describe(conf(R"(,"store_dir":"/var/lib/cni/ipoib-ipam")"));
  REQUIRE(local.size() == 2);
  CHECK_THAT(local[1], Catch::StartsWith("store local: /var/lib/cni/ipoib-ipam (pool-blue;") &&
                           Catch::Contains("unique on this node only") &&
                           Catch::Contains("\"datastore\": \"etcd\""));

  // The same IPAM in a NetworkAttachmentDefinition: every node uses it, so duplicates follow.
  const auto in_nad = describe(nad(conf("")));
  REQUIRE(in_nad.size() == 3);
  CHECK_THAT(in_nad[2], Catch::StartsWith("warning: a NetworkAttachmentDefinition with a "
                                          "node-local store") &&
                            Catch::Contains("same addresses"));
  // A NAD whose store_dir is on a shared filesystem here is not the trap.
  const auto shared_nad = describe(nad(conf(R"(,"store_dir":"/shared/ipam")")), kNfs);
  CHECK(shared_nad.size() == 2);
  CHECK_THAT(joined(shared_nad), Catch::Contains("store shared") && !Catch::Contains("warning"));
}

TEST_CASE("validate-config store: the cluster store's endpoints, mode, TLS and auth") {
  ipoib::testing::TempDir tmp("validate-store");
  const std::string cert = tmp.abs("client.crt");
  const std::string key = tmp.abs("client.key");
  const std::string ca = tmp.abs("ca.crt");
  const std::string password_file = tmp.abs("password");
  write(cert, "not a certificate\n", 0644);
  write(ca, "not a certificate\n", 0644);
  write(key, "not a key\n", 0600);
  write(password_file, "s3cret-from-file\n", 0600);

  SECTION("per-address, plain http, user with an inline password: never printed, and warned") {
    const auto lines =
        describe(conf(R"(,"datastore":"etcd","etcd_host":"http://10.0.0.1:2379,http://10.0.0.2",)"
                      R"("etcd_username":"ipam","etcd_password":"hunter2-inline")"));
    const std::string all = joined(lines);
    INFO(all);
    CHECK_THAT(lines.at(1),
               Catch::StartsWith("store cluster: etcd http://10.0.0.1:2379,http://10.0.0.2:2379 "
                                 "(per-address: every reservation a key under "
                                 "/ipoib/v1/net/blue/; plain http (no TLS); user ipam, password "
                                 "inline (etcd_password))") &&
                   Catch::Contains("unique cluster-wide"));
    CHECK_THAT(all, Catch::Contains("warning: the etcd password crosses the network in clear"));
    CHECK_THAT(all, !Catch::Contains("hunter2"));
    // Nothing refuses it here: no file to read.
    CHECK_THAT(all, !Catch::Contains("ADD would fail"));
  }

  SECTION("node slices, TLS with a client certificate, password from a file") {
    const auto lines = describe(conf(
        R"(,"datastore":"etcd","etcd_host":"https://etcd.example:2379","node_slice_size":"/28",)"
        R"("etcd_username":"ipam","etcd_password_file":")" +
        password_file + R"(","etcd_cert_file":")" + cert + R"(","etcd_key_file":")" + key +
        R"(","etcd_ca_cert_file":")" + ca + R"(","store_dir":"/var/lib/cni/ipoib-ipam")"));
    const std::string all = joined(lines);
    INFO(all);
    CHECK_THAT(
        lines.at(1),
        Catch::StartsWith("store cluster: etcd https://etcd.example:2379 (node slices /28: "
                          "each node claims slices of a range under /ipoib/v1/net/blue/"
                          "range/ and allocates inside them from /var/lib/cni/ipoib-ipam; "
                          "TLS, members verified against etcd_ca_cert_file " +
                          ca + ", client certificate " + cert + " (key " + key +
                          "); user ipam, password from etcd_password_file " + password_file + ")"));
    CHECK_THAT(all, !Catch::Contains("s3cret") && !Catch::Contains("in clear"));
    // The files are not PEM: the client's own load refuses them, as ADD would.
    CHECK_THAT(all, Catch::Contains("warning: on this machine ADD would fail (code 7)"));
  }

  SECTION("a key or password file others can read: the warning names it and chmod 600") {
    write(key, "not a key\n", 0644);
    auto lines = describe(conf(R"(,"datastore":"etcd","etcd_host":"https://10.0.0.1:2379",)"
                               R"("etcd_cert_file":")" +
                               cert + R"(","etcd_key_file":")" + key + "\""));
    std::string all = joined(lines);
    INFO(all);
    CHECK_THAT(all, Catch::Contains("TLS, members verified against the system's CAs, client "
                                    "certificate " +
                                    cert));
    CHECK_THAT(all, Catch::Contains("ADD would fail (code 7)") && Catch::Contains(key) &&
                        Catch::Contains("chmod 600"));

    write(password_file, "s3cret-from-file\n", 0644);
    lines = describe(conf(R"(,"datastore":"etcd","etcd_host":"https://10.0.0.1:2379",)"
                          R"("etcd_username":"u","etcd_password_file":")" +
                          password_file + R"(")"));
    all = joined(lines);
    INFO(all);
    CHECK_THAT(all, Catch::Contains("ADD would fail (code 7)") && Catch::Contains(password_file) &&
                        Catch::Contains("chmod 600") && !Catch::Contains("s3cret"));
    CHECK_THAT(all, Catch::Contains("no client certificate"));
  }

  SECTION("a NAD with the cluster store is not warned about") {
    const auto lines =
        describe(nad(conf(R"(,"datastore":"etcd","etcd_host":"http://127.0.0.1:2379")")));
    CHECK_THAT(joined(lines), Catch::Contains("store cluster") &&
                                  Catch::Contains("no authentication") &&
                                  !Catch::Contains("warning"));
  }
}
