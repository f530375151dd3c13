// libFuzzer target for the CNI protocol engine's parsers of untrusted bytes.
//
// Input: "<network config>\0<CNI_ARGS>" (the part after the first NUL is CNI_ARGS; without a NUL
// the whole input is the config). Exercises parse_netconf (with prevResult), parse_cni_args,
// parse_gc_attachments, decode_result on the document itself, error_json, and checks that every
// decoded result survives an encode -> decode -> encode round trip in every CNI version. Each
// input also goes through run_plugin (the verb picked from the input's length, the CNI_ARGS part
// as CNI_ARGS) with a plugin that echoes prevResult: stdout must hold exactly one JSON document,
// or nothing after a successful DEL/CHECK/GC/STATUS.
//
// The same entry point is compiled into unit.cni, which replays tests/fuzz/regressions/ and the
// seed corpus in every normal build.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/log.h"
#include "ipoib/cni/args.h"
#include "ipoib/cni/config.h"
#include "ipoib/cni/result.h"
#include "ipoib/cni/skel.h"

namespace {

using namespace ipoib;
using namespace ipoib::cni;

#define FUZZ_ASSERT(cond)                                                              \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "fuzz_cni_config: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (false)

std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void round_trip(const CniResult& r) {
  for (const CniVersion v : kSupportedVersions) {
    auto encoded = encode_result(r, v);
    if (!encoded.ok()) {
      // The only refusal for a decoded (hence index-checked) result.
      FUZZ_ASSERT(v <= CniVersion::k0_2_0 && r.ips.empty());
      FUZZ_ASSERT(encoded.error().code() == ErrorCode::kIncompatibleVersion);
      continue;
    }
    FUZZ_ASSERT(encoded->at("cniVersion") == std::string(to_string(v)));
    // Through text, as a runtime would read it.
    auto reparsed = parse_json(dump(*encoded), "round trip");
    FUZZ_ASSERT(reparsed.ok());
    auto decoded = decode_result(*reparsed, v);
    FUZZ_ASSERT(decoded.ok());
    auto again = encode_result(*decoded, v);
    FUZZ_ASSERT(again.ok());
    FUZZ_ASSERT(*again == *encoded);
    if (v == kLatestVersion) {
      FUZZ_ASSERT(*decoded == r);  // 1.1.0 loses nothing
    }
  }
}

// ADD answers with the config's prevResult (when it has an address), so whatever the parsers
// accepted is encoded back through the real output path.
class EchoPlugin : public Plugin {
 public:
  Result<CniResult> add(const Request& req) override {
    if (req.conf.prev_result) {
      return *req.conf.prev_result;
    }
    CniResult r;
    r.ips.push_back({.address = IpPrefix::parse("10.0.0.5/24").value()});
    return r;
  }
  Status del(const Request&) override { return {}; }
  Status check(const Request&) override { return {}; }
  Status gc(const Request&, const std::optional<std::vector<Attachment>>&) override { return {}; }
  Status status(const Request&) override { return {}; }
};

void check_run_plugin(std::string_view config, std::string_view args, std::size_t size) {
  static constexpr const char* kVerbs[] = {"ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS"};
  const std::string verb = kVerbs[size % 6];
  std::vector<std::string> writes;
  ProcessIo io;
  io.getenv = [&](std::string_view name) -> std::optional<std::string> {
    if (name == "CNI_COMMAND") return verb;
    if (name == "CNI_CONTAINERID") return std::string("fuzz");
    if (name == "CNI_NETNS") return std::string("/var/run/netns/fuzz");
    if (name == "CNI_IFNAME") return std::string("net1");
    if (name == "CNI_PATH") return std::string("/opt/cni/bin");
    if (name == "CNI_ARGS") return std::string(args);
    return std::nullopt;
  };
  io.read_stdin = [&]() -> Result<std::string> { return std::string(config); };
  io.write_stdout = [&](std::string_view text) { writes.emplace_back(text); };
  EchoPlugin plugin;
  Logger log;
  log.set_level(LogLevel::kOff);
  // kIgnore: a fuzzed "logFile" must not create files.
  const int code = run_plugin(plugin, io, log, ConfigLogging::kIgnore);
  FUZZ_ASSERT(code == 0 || code == 1);
  FUZZ_ASSERT(writes.size() <= 1);
  if (writes.empty()) {
    FUZZ_ASSERT(code == 0 && verb != "ADD" && verb != "VERSION");
    return;
  }
  auto doc = parse_json(writes[0], "stdout");  // one document, nothing after it
  FUZZ_ASSERT(doc.ok());
  FUZZ_ASSERT(doc->is_object());
  FUZZ_ASSERT(code == 0 || doc->contains("code"));
}

void check_args(std::string_view text) {
  auto args = parse_cni_args(text);
  if (!args.ok()) {
    FUZZ_ASSERT(args.error().code() == ErrorCode::kInvalidEnvironment);
    return;
  }
  for (const auto& [key, value] : args->pairs) {
    FUZZ_ASSERT(!key.empty());
    FUZZ_ASSERT(args->get(key).has_value());
  }
  FUZZ_ASSERT(args->pod_name == args->get("K8S_POD_NAME").value_or(""));
  FUZZ_ASSERT(args->pod_namespace == args->get("K8S_POD_NAMESPACE").value_or(""));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view config = input;
  std::string_view args;
  if (const auto nul = input.find('\0'); nul != std::string_view::npos) {
    config = input.substr(0, nul);
    args = input.substr(nul + 1);
  }
  check_args(args);
  check_run_plugin(config, args, size);

  const auto sniffed = sniff_version(config);
  auto conf = parse_netconf(config);
  if (!conf.ok()) {
    const auto doc = error_json(conf.error(), sniffed);
    FUZZ_ASSERT(doc.at("code").get<int>() == static_cast<int>(conf.error().code()));
    FUZZ_ASSERT(!dump(doc).empty());
    return 0;
  }
  if (conf->version_text.empty() == false) {
    FUZZ_ASSERT(sniffed == conf->version);
  }
  if (conf->prev_result) {
    round_trip(*conf->prev_result);
  }
  // The document itself as a delegated IPAM's output.
  if (auto as_result = decode_result(conf->raw, conf->version); as_result.ok()) {
    round_trip(*as_result);
  }
  (void)parse_gc_attachments(conf->raw);
  for (const auto& [key, value] : conf->runtime_config.items()) {
    FUZZ_ASSERT(conf->capabilities.at(key) == true);
  }
  return 0;
}
