#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "ipoib/plugin/ipoib_plugin.h"

using ipoib::plugin::validate_config_main;

namespace {

int validate_text(const std::string& text) {
  const std::string path = "/tmp/plugin-unit-validate-" + std::to_string(::getpid());
  std::ofstream(path) << text;
  std::string arg0 = "validate-config";
  std::string arg1 = path;
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  const int rc = validate_config_main(2, argv);
  std::remove(path.c_str());
  return rc;
}

}  // namespace

TEST_CASE("validate-config: network configs") {
  CHECK(validate_text(R"({"cniVersion":"1.0.0","name":"ib","type":"ipoib","master":"ib0",
                          "pkey":"0x8001","mode":"datagram","mtu":2044,
                          "ipam":{"type":"whereabouts","range":"10.0.0.0/24"}})") == 0);
  CHECK(validate_text(R"({"cniVersion":"1.0.0","name":"ib","type":"ipoib","master":"ib0",
                          "pkey":"0x8000"})") == 1);
  CHECK(validate_text(R"({"cniVersion":"1.0.0","name":"ib","type":"ipoib"})") == 1);
  CHECK(validate_text("not json") == 1);
  // The built-in IPAM section is validated too.
  CHECK(validate_text(R"({"cniVersion":"1.0.0","name":"ib","type":"ipoib","master":"ib0",
                          "ipam":{"type":"whereabouts","range":"10.0.0.0/33"}})") == 1);
}

TEST_CASE("validate-config: conflists and NetworkAttachmentDefinitions") {
  CHECK(validate_text(R"({"cniVersion":"1.0.0","name":"ib","plugins":[
                          {"type":"ipoib","master":"ib0"},{"type":"tuning"}]})") == 0);
  CHECK(validate_text(R"({"cniVersion":"1.0.0","name":"ib","plugins":[
                          {"type":"ipoib","master":"ib0","mode":"ud"}]})") == 1);
  CHECK(validate_text(R"({"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition",
                          "metadata":{"name":"ib"},"spec":{"config":
                          "{\"cniVersion\":\"0.3.1\",\"name\":\"ib\",\"type\":\"ipoib\",\"master\":\"ib0\"}"}})") ==
        0);
  CHECK(validate_text(
            "apiVersion: k8s.cni.cncf.io/v1\n"
            "kind: NetworkAttachmentDefinition\n"
            "metadata:\n  name: ib\n"
            "spec:\n  config: '{\"cniVersion\": \"0.3.1\", \"type\": \"ipoib\",\n"
            "    \"name\": \"ib\", \"master\": \"ib0\", \"ipam\": {\"type\": \"whereabouts\",\n"
            "    \"range\": \"192.168.0.0/24\"}}'\n") == 0);
  CHECK(validate_text("kind: NetworkAttachmentDefinition\n"
                      "spec:\n  config: |\n    {\"cniVersion\": \"0.3.1\", \"type\": \"ipoib\",\n"
                      "     \"name\": \"ib\", \"master\": \"ib0\", \"pkey\": 0}\n"
                      "other: x\n") == 1);
  char arg0[] = "validate-config";
  char* argv[] = {arg0, nullptr};
  CHECK(validate_config_main(1, argv) == 2);
}
