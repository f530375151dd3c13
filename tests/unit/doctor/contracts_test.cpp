// unit.doctor.contracts: the doctor holds no copy of the plugin's rules. It reads network files
// with the reader `ipoib validate-config` uses (plugin/network_file.h), and it calls a child
// "this plugin's" exactly when the plugin's GC would delete it (plugin/tag.h). `ipoib ipam
// --config` finds a file's networks as validate-config does (cni/network_attachment.h).
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ipoib/base/log.h"
#include "ipoib/cni/network_attachment.h"
#include "ipoib/doctor/doctor.h"
#include "ipoib/ib/port.h"
#include "ipoib/ipam/admin.h"
#include "ipoib/plugin/intent.h"
#include "ipoib/plugin/ipoib_plugin.h"
#include "ipoib/plugin/network_file.h"
#include "ipoib/plugin/tag.h"
#include "lib/doctor/internal.h"
#include "tests/fixtures/fixture_tree.h"

using namespace ipoib;
using ipoib::testing::FixtureTree;

namespace {

// The seed NAD's config, the shape every variant below wraps.
const std::string kSeed =
    R"({"cniVersion": "0.3.1", "type": "ipoib", "name": "jarvice-ipoib", "master": "ib0",)"
    R"( "ipam": {"type": "whereabouts", "range": "192.168.0.0/24"}})";

std::string nad(const std::string& spec_lines) {
  return "apiVersion: \"k8s.cni.cncf.io/v1\"\nkind: NetworkAttachmentDefinition\n"
         "metadata:\n  name: jarvice-ipoib\nspec:\n" +
         spec_lines;
}

struct Outcome {
  bool ok = false;
  std::string message;  // the error, "" when accepted
};

// validate-config's path: the reader with the host's flat-file sources.
Outcome validate_config(const std::string& text) {
  auto entries = plugin::read_network_file(text, ipam::ConfigSources{});
  if (!entries.ok()) {
    return {false, entries.error().msg()};
  }
  const bool has_ipoib = std::any_of(entries->begin(), entries->end(),
                                     [](const plugin::NetworkEntry& e) { return e.ipoib; });
  return {true, has_ipoib ? "" : "no ipoib"};
}

// The doctor's path, from a file as `ipoib doctor --config FILE` reads it.
Outcome doctor_config(const FixtureTree& tree, const std::string& text) {
  tree.file("input", text);
  doctor::DoctorOptions options;
  const Status s = doctor::apply_config_file(tree.abs("input"), options);
  if (s.ok()) {
    return {true, ""};
  }
  const std::string prefix = "--config " + tree.abs("input") + ": ";
  const std::string& msg = s.error().msg();
  if (msg.ends_with("no plugin of type \"ipoib\" in it")) {
    return {true, "no ipoib"};
  }
  return {false, msg.starts_with(prefix) ? msg.substr(prefix.size()) : msg};
}

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

TEST_CASE("NAD YAML: spec.config as quoted, escaped, folded and block scalars", "[doctor]") {
  auto single = cni::nad_yaml_configs(nad("  config: '{\n  \"name\": \"it''s\"\n}'\n"));
  REQUIRE(single.ok());
  CHECK(single->at(0) == "{ \"name\": \"it's\" }");  // YAML folds the breaks into spaces

  auto dq = cni::nad_yaml_configs(nad("  config: \"{\\\"a\\\": \\\"\\u00e9\\t\\\\\\\"}\"\n"));
  REQUIRE(dq.ok());
  CHECK(dq->at(0) == "{\"a\": \"\xc3\xa9\t\\\"}");

  auto joined = cni::nad_yaml_configs(nad("  config: \"{\\\"a\\\": \\\n     1}\"\n"));
  REQUIRE(joined.ok());
  CHECK(joined->at(0) == "{\"a\": 1}");

  auto block = cni::nad_yaml_configs(
      nad("  config: |\n    {\"type\": \"ipoib\",\n      \"master\": \"ib1\"}\n\nstatus: x\n"));
  REQUIRE(block.ok());
  CHECK(block->at(0) == "{\"type\": \"ipoib\",\n  \"master\": \"ib1\"}\n");

  auto strip = cni::nad_yaml_configs(nad("  config: |-\n    {}\n\n"));
  REQUIRE(strip.ok());
  CHECK(strip->at(0) == "{}");

  auto folded = cni::nad_yaml_configs(nad("  config: >\n    {\"a\":\n    1}\n"));
  REQUIRE(folded.ok());
  CHECK(folded->at(0) == "{\"a\": 1}\n");

  auto two = cni::nad_yaml_configs(nad("  config: '{}'\n") + "---\n" + nad("  config: '[]'\n"));
  REQUIRE(two.ok());
  CHECK(*two == std::vector<std::string>{"{}", "[]"});

  CHECK_FALSE(cni::nad_yaml_configs("spec:\n  config: '{}'\n").ok());  // no kind
  CHECK_FALSE(cni::nad_yaml_configs(nad("  other: 1\n")).ok());
  CHECK_FALSE(cni::nad_yaml_configs(nad("  config: '{unterminated\n")).ok());
  CHECK_FALSE(cni::nad_yaml_configs(nad("  config: '{}' trailing\n")).ok());
  CHECK_FALSE(cni::nad_yaml_configs(nad("  config: \"\\q\"\n")).ok());
  CHECK_FALSE(cni::nad_yaml_configs(nad("  config: {\"a\": 1}\n")).ok());
}

TEST_CASE("the same NAD YAML is accepted or refused identically by doctor and validate-config",
          "[doctor]") {
  FixtureTree tree;
  const std::string quoted = "  config: '" + kSeed + "'\n";
  struct Variant {
    std::string name;
    std::string text;
    bool ok;
  };
  const std::vector<Variant> variants = {
      {"seed", nad(quoted), true},
      // The old validate-config took the first "config:" anywhere: in a comment, or in metadata.
      {"comment first", "# config: '{broken'\n" + nad(quoted), true},
      {"annotation first",
       "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n"
       "  name: jarvice-ipoib\n  annotations:\n    config: 'not json'\nspec:\n" +
           quoted,
       true},
      {"CRLF",
       [&] {
         std::string t = nad(quoted);
         std::string out;
         for (char c : t) {
           out += c == '\n' ? std::string("\r\n") : std::string(1, c);
         }
         return out;
       }(),
       true},
      {"block", nad("  config: |-\n    " + kSeed + "\n"), true},
      {"folded", nad("  config: >\n    " + kSeed + "\n"), true},
      {"after a DaemonSet", "kind: DaemonSet\nspec:\n  config: 'x'\n---\n" + nad(quoted), true},
      {"mapping, not string", nad("  config: " + kSeed + "\n"), false},
      {"unterminated", nad("  config: '" + kSeed + "\n"), false},
      {"no kind", "spec:\n" + quoted, false},
      {"text after quote", nad("  config: '" + kSeed + "' x\n"), false},
      {"empty config", nad("  config:\n"), false},
      {"bad pkey",
       nad("  config: '{\"cniVersion\": \"0.3.1\", \"type\": \"ipoib\", "
           "\"name\": \"n\", \"master\": \"ib0\", \"pkey\": \"0x8000\"}'\n"),
       false},
      {"second document invalid",
       nad(quoted) + "---\n" + nad("  config: '{\"type\": \"ipoib\", \"name\": \"n\"}'\n"), false},
      {"no range",
       nad("  config: '{\"cniVersion\": \"0.3.1\", \"type\": \"ipoib\", "
           "\"name\": \"n\", \"master\": \"ib0\", \"ipam\": {\"type\": "
           "\"whereabouts\"}}'\n"),
       false},
      {"tabs", "kind:\tNetworkAttachmentDefinition\nspec:\n\tconfig: '{}'\n", false},
  };
  for (const Variant& v : variants) {
    INFO(v.name << ":\n" << v.text);
    const Outcome a = validate_config(v.text);
    const Outcome b = doctor_config(tree, v.text);
    CHECK(a.ok == v.ok);
    CHECK(b.ok == a.ok);
    CHECK(b.message == a.message);
  }
}

TEST_CASE("conf/: every example is read identically by doctor and validate-config", "[doctor]") {
  FixtureTree tree;
  int files = 0;
  for (const char* sub : {"nad", "cni"}) {
    for (const auto& e :
         std::filesystem::directory_iterator(std::string(IPOIB_CONF_DIR) + "/" + sub)) {
      const std::string text = slurp(e.path());
      INFO(e.path());
      const Outcome a = validate_config(text);
      const Outcome b = doctor_config(tree, text);
      CHECK(a.ok);
      CHECK(b.ok == a.ok);
      CHECK(b.message == a.message);
      ++files;
    }
  }
  CHECK(files >= 10);
}

TEST_CASE("conf/: ipam --config opens the network validate-config reads in every example",
          "[doctor]") {
  int with_ipam = 0;
  for (const char* sub : {"nad", "cni"}) {
    for (const auto& e :
         std::filesystem::directory_iterator(std::string(IPOIB_CONF_DIR) + "/" + sub)) {
      INFO(e.path());
      auto entries = plugin::read_network_file(slurp(e.path()), ipam::ConfigSources{});
      REQUIRE(entries.ok());
      const auto builtin = std::find_if(entries->begin(), entries->end(),
                                        [](const plugin::NetworkEntry& n) { return n.ipam; });
      auto netconf = ipam::read_netconf_ipam(e.path().string());
      if (builtin == entries->end()) {
        CHECK_FALSE(netconf.ok());
        continue;
      }
      REQUIRE(netconf.ok());
      CHECK(netconf->network == builtin->conf.name);
      CHECK(netconf->ipam == builtin->conf.raw["ipam"]);
      ++with_ipam;
    }
  }
  CHECK(with_ipam >= 4);
}

TEST_CASE("ipam --config and validate-config read a NAD in YAML and JSON alike", "[doctor]") {
  FixtureTree tree;
  const nlohmann::json as_json = {{"apiVersion", "k8s.cni.cncf.io/v1"},
                                  {"kind", "NetworkAttachmentDefinition"},
                                  {"metadata", {{"name", "jarvice-ipoib"}}},
                                  {"spec", {{"config", kSeed}}}};
  for (const std::string& text :
       {nad("  config: '" + kSeed + "'\n"), nad("  config: |\n    " + kSeed + "\n"),
        as_json.dump(2), kSeed}) {
    INFO(text);
    tree.file("net", text);
    auto entries = plugin::read_network_file(text, ipam::ConfigSources{});
    REQUIRE(entries.ok());
    auto netconf = ipam::read_netconf_ipam(tree.abs("net"));
    REQUIRE(netconf.ok());
    CHECK(netconf->network == "jarvice-ipoib");
    CHECK(netconf->ipam == entries->at(0).conf.raw["ipam"]);
  }
}

namespace {

// The host netns as the plugin's GC sees it: a dump of links; deletions are recorded.
class RecordingHost final : public plugin::LinkSession {
 public:
  RecordingHost(std::vector<netlink::LinkInfo> links, std::vector<std::string>& deleted)
      : links_(std::move(links)), deleted_(deleted) {}
  Status create_link(netlink::ByteView) override { return unused(); }
  Status set_alias(int, std::string_view) override { return unused(); }
  Status rename_link(int, std::string_view) override { return unused(); }
  Status set_mtu(int, int) override { return unused(); }
  Status enable_ipv6(std::string_view) override { return unused(); }
  Status add_address(int, const IpPrefix&) override { return unused(); }
  Status add_route(const netlink::RouteSpec&) override { return unused(); }
  Status set_up(int) override { return unused(); }
  Status enable_arp_notify(std::string_view) override { return unused(); }
  Result<netlink::DeleteOutcome> delete_link(int ifindex) override {
    for (const auto& link : links_) {
      if (link.ifindex == ifindex) {
        deleted_.push_back(link.name);
      }
    }
    return netlink::DeleteOutcome::kDeleted;
  }
  Result<std::optional<netlink::LinkInfo>> link_by_name(std::string_view name) override {
    for (const auto& link : links_) {
      if (link.name == name) {
        return std::optional<netlink::LinkInfo>(link);
      }
    }
    return std::optional<netlink::LinkInfo>();
  }
  Result<std::optional<netlink::LinkInfo>> link_by_index(int) override { return unused(); }
  Result<std::vector<netlink::LinkInfo>> links_of_kind(std::string_view kind) override {
    std::vector<netlink::LinkInfo> out;
    for (const auto& link : links_) {
      if (link.kind == kind) {
        out.push_back(link);
      }
    }
    return out;
  }
  Result<std::vector<netlink::AddressInfo>> addresses(int) override { return unused(); }
  Result<std::vector<netlink::RouteInfo>> routes(IpFamily) override { return unused(); }

 private:
  static Error unused() { return Error(ErrorCode::kNotAvailable, "not used by GC"); }
  std::vector<netlink::LinkInfo> links_;
  std::vector<std::string>& deleted_;
};

class RecordingLinks final : public plugin::LinkOps {
 public:
  RecordingLinks(std::vector<netlink::LinkInfo> links, std::vector<std::string>& deleted)
      : links_(std::move(links)), deleted_(deleted) {}
  Result<std::unique_ptr<plugin::LinkSession>> open_host() override {
    return std::unique_ptr<plugin::LinkSession>(new RecordingHost(links_, deleted_));
  }
  Result<std::unique_ptr<plugin::LinkSession>> open_netns(const netns::NetnsHandle&) override {
    return Error(ErrorCode::kNotAvailable, "not used by GC");
  }

 private:
  std::vector<netlink::LinkInfo> links_;
  std::vector<std::string>& deleted_;
};

}  // namespace

TEST_CASE("a child is this plugin's for the doctor exactly when GC would delete it", "[doctor]") {
  using plugin::ChildOwner;
  using plugin::temporary_child_name;
  // Children of ib0 in the host netns, with the marks the plugin makes and near misses, for two
  // networks n and m on the same master.
  const std::vector<ipoib::testing::ChildSpec> children = {
      {"dev12", 12, plugin::child_tag("n", "0123456789ab", "net1")},  // refunded, tagged
      {"net1", 13, plugin::child_tag("m", "cafe", "net1")},
      {temporary_child_name("killed", "net1"), 14, ""},   // ADD of n killed before the tag
      {temporary_child_name("killedm", "net1"), 15, ""},  // the same for m
      {"ipt0123456789ab", 16, ""},                        // the shape, no intent
      {temporary_child_name("other", "net1"), 17, "someone else's"},
      {temporary_child_name("x", "net1"), 18, ""},  // an intent naming another attachment
      {"dev19", 19, ""},                            // refunded, never tagged
      {"ib0.8001", 20, ""},                         // the administrator's
      {"legacy", 21, "ipoib-cni:cafe:net2"},        // legacy tag: GC never deletes it
      {"mine", 22, "ipoib-cni:a:b:c:net1"},         // prefix, malformed tag
  };
  FixtureTree tree;
  tree.dir("run");
  const plugin::IntentDirectory intents(tree.abs("run/ipoib-cni"));
  REQUIRE(
      intents.record(temporary_child_name("killed", "net1"), ChildOwner{"n", {"killed", "net1"}})
          .ok());
  REQUIRE(
      intents.record(temporary_child_name("killedm", "net1"), ChildOwner{"m", {"killedm", "net1"}})
          .ok());
  REQUIRE(intents.record(temporary_child_name("x", "net1"), ChildOwner{"n", {"y", "net1"}}).ok());

  // The doctor first: GC removes the intents of what it deletes.
  ipoib::testing::NodeSpec node;
  node.children = children;
  ipoib::testing::build_node(tree, node);
  doctor::DoctorOptions options;
  options.roots = doctor::Roots::under(tree.path());
  options.use_verbs = doctor::DoctorOptions::UseVerbs::kNo;
  std::string leaked;
  for (const doctor::CheckResult& r : doctor::run_checks(options)) {
    if (r.id == "children.leaked") {
      leaked = r.finding;
    }
  }
  const std::string ours_part = leaked.substr(0, leaked.find(". "));

  // GC of each network with an empty valid-attachments list: every attachment is gone.
  std::vector<netlink::LinkInfo> links;
  netlink::LinkInfo master;
  master.ifindex = node.master_ifindex;
  master.name = "ib0";
  master.kind = "ipoib";
  links.push_back(master);
  for (const auto& c : children) {
    netlink::LinkInfo link;
    link.ifindex = c.ifindex;
    link.name = c.name;
    link.kind = "ipoib";
    link.parent_ifindex = node.master_ifindex;
    link.alias = c.ifalias;
    links.push_back(link);
  }
  std::vector<std::string> deleted;
  Logger log;
  for (const char* network : {"n", "m"}) {
    plugin::PluginSeams seams{
        .kind = plugin::make_ipoib_kind(ib::make_sysfs_port_query(ib::SysfsRoot{tree.path()})),
        .links = std::make_unique<RecordingLinks>(links, deleted),
        .ipam = plugin::default_ipam_factory(log),
        .intent_dir = intents.path(),
        .ipam_sources = ipam::ConfigSources{.flat_file_paths = {}}};
    auto gc_plugin = plugin::make_plugin(std::move(seams), log);
    cni::Request req;
    auto conf = cni::parse_netconf(std::string(R"({"cniVersion":"1.1.0","name":")") + network +
                                   R"(","type":"ipoib","master":"ib0"})");
    REQUIRE(conf.ok());
    req.conf = *conf;
    REQUIRE(gc_plugin->gc(req, std::vector<cni::Attachment>{}).ok());
  }
  REQUIRE(deleted.size() == 4);

  for (const auto& c : children) {
    INFO(c.name << " alias '" << c.ifalias << "'; doctor: " << leaked);
    const bool gc_deletes = std::find(deleted.begin(), deleted.end(), c.name) != deleted.end();
    CHECK((ours_part.find(" " + c.name + " (") != std::string::npos) == gc_deletes);
  }
  CHECK_THAT(leaked, Catch::Contains("legacy (ipoib-cni:cafe:net2)"));  // reported apart
  CHECK_THAT(leaked, Catch::Contains("dev19"));
  CHECK_THAT(leaked, Catch::Contains("not ours and are left alone: ipt0123456789ab"));
}

TEST_CASE("validate-config: a network's ranges and whether its store is local or shared",
          "[doctor]") {
  CHECK(plugin::classify_filesystem(0x6969).name == "nfs");
  CHECK(plugin::classify_filesystem(0x6969).shared);
  CHECK(plugin::classify_filesystem(0x0bd00bd0).shared);  // Lustre
  CHECK(plugin::classify_filesystem(0x47504653).shared);  // GPFS
  CHECK(plugin::classify_filesystem(0x00c36400).shared);  // CephFS
  CHECK_FALSE(plugin::classify_filesystem(0xef53).shared);
  CHECK(plugin::classify_filesystem(0x12345678).name == "0x12345678");
  CHECK_FALSE(plugin::classify_filesystem(0x12345678).shared);

  auto entries = plugin::read_network_file(
      R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"ipoib","master":"ib0","ipam":{)"
      R"("type":"whereabouts","store_dir":"/shared/ipam","network_name":"blue","ipRanges":[)"
      R"({"range":"10.1.0.0/24","exclude":["10.1.0.8/29"]},{"range":"fd00::/120"}]}}]})",
      ipam::ConfigSources{.flat_file_paths = {}});
  REQUIRE(entries.ok());
  const plugin::FilesystemProbe nfs_mounted = [](const std::string& dir) {
    return std::optional<plugin::FilesystemInfo>({dir, 0x6969});
  };
  const plugin::FilesystemProbe not_mounted = [](const std::string&) {
    return std::optional<plugin::FilesystemInfo>({"/", 0xef53});
  };
  const auto shared = plugin::describe_network(entries->at(0), nfs_mounted);
  REQUIRE(shared.size() == 3);
  CHECK(shared[0] == "range 10.1.0.0/24: 10.1.0.1-10.1.0.254, 246 addresses (1 excluded interval)");
  CHECK(shared[1] == "range fd00::/120: fd00::1-fd00::fe, 254 addresses");
  CHECK_THAT(shared[2], Catch::StartsWith("store shared: /shared/ipam (pool-blue; nfs)"));
  const auto local = plugin::describe_network(entries->at(0), not_mounted);
  CHECK_THAT(local.at(2), Catch::StartsWith(
                              "store local: /shared/ipam (pool-blue; not created yet, / is ext4)"));
  CHECK_THAT(local.at(2), Catch::Contains("unique on this node only"));

  // The real probe on a directory this test creates: tmpfs or a disk, never shared here.
  FixtureTree tree;
  const auto real = plugin::statfs_probe()(tree.abs("a/b"));
  REQUIRE(real);
  CHECK(real->path == tree.path());
}
