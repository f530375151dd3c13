#include "ipoib/cni/env.h"

#include <array>
#include <cstdint>

#include "ipoib/base/strings.h"

namespace ipoib::cni {
namespace {

// IFNAMSIZ - 1 (include/uapi/linux/if.h); libcni's maxInterfaceNameLength.
constexpr std::size_t kMaxIfnameBytes = 15;

struct CommandName {
  std::string_view name;
  Command command;
};
constexpr std::array<CommandName, 6> kCommands = {{{"ADD", Command::kAdd},
                                                   {"DEL", Command::kDel},
                                                   {"CHECK", Command::kCheck},
                                                   {"VERSION", Command::kVersion},
                                                   {"GC", Command::kGc},
                                                   {"STATUS", Command::kStatus}}};

bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// Go's unicode.IsSpace, which libcni's ValidateInterfaceName applies to each rune.
bool is_unicode_space(std::uint32_t r) {
  switch (r) {
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case ' ':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return r >= 0x2000 && r <= 0x200A;
  }
}

// Decodes the UTF-8 sequence at s[i], advancing i; an invalid byte decodes as U+FFFD and
// advances by one, as Go's bytes.Runes does.
std::uint32_t next_rune(std::string_view s, std::size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  std::size_t len = 0;
  std::uint32_t r = 0;
  std::uint32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, r = b0 & 0x1Fu, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, r = b0 & 0x0Fu, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, r = b0 & 0x07u, min = 0x10000;
  } else {
    ++i;
    return 0xFFFD;
  }
  if (i + len > s.size()) {
    ++i;
    return 0xFFFD;
  }
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    r = (r << 6) | (b & 0x3Fu);
  }
  if (r < min || r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF)) {
    ++i;
    return 0xFFFD;
  }
  i += len;
  return r;
}

Status validate_ifname(std::string_view s) {
  // Messages and order as libcni's utils.ValidateInterfaceName.
  if (s.empty()) {
    return Error(ErrorCode::kInvalidEnvironment, "interface name is empty");
  }
  if (s.size() > kMaxIfnameBytes) {
    return Error(ErrorCode::kInvalidEnvironment, "interface name is too long",
                 "interface name should be less than 16 characters");
  }
  if (s == "." || s == "..") {
    return Error(ErrorCode::kInvalidEnvironment, "interface name is . or ..");
  }
  if (!is_valid_ifname(s)) {
    return Error(ErrorCode::kInvalidEnvironment,
                 "interface name contains / or : or whitespace characters", std::string(s));
  }
  // A departure from libcni: the kernel treats a name with '%' as a template and expands it on
  // create and rename (dev_get_valid_name -> dev_alloc_name: "net%d" becomes net0, net1, ...),
  // so the pod would get another name than the one asked for and the result reports.
  if (s.find('%') != std::string_view::npos) {
    return Error(ErrorCode::kInvalidEnvironment,
                 "interface name contains %, which the kernel expands as a name template",
                 std::string(s));
  }
  return {};
}

bool needs(Command c, std::string_view var) {
  const bool attach = c == Command::kAdd || c == Command::kCheck || c == Command::kDel;
  if (var == "CNI_CONTAINERID" || var == "CNI_IFNAME") {
    return attach;
  }
  if (var == "CNI_NETNS") {
    // DEL must work when the netns is already gone and the runtime sends it empty.
    return c == Command::kAdd || c == Command::kCheck;
  }
  if (var == "CNI_PATH") {
    return c == Command::kGc;
  }
  return false;
}

}  // namespace

std::string_view to_string(Command c) {
  for (const auto& n : kCommands) {
    if (n.command == c) {
      return n.name;
    }
  }
  return "?";
}

bool is_valid_identifier(std::string_view s) {
  // libcni utils: ^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$
  if (s.empty() || !is_name_start(s[0])) {
    return false;
  }
  for (const char c : s.substr(1)) {
    if (!is_name_start(c) && c != '_' && c != '.' && c != '-') {
      return false;
    }
  }
  return true;
}

bool is_valid_ifname(std::string_view s) {
  // The kernel's dev_valid_name() (net/core/dev.c) and libcni's ValidateInterfaceName.
  if (s.empty() || s.size() > kMaxIfnameBytes || s == "." || s == "..") {
    return false;
  }
  std::size_t i = 0;
  while (i < s.size()) {
    const std::uint32_t r = next_rune(s, i);
    if (r == '/' || r == ':' || is_unicode_space(r)) {
      return false;
    }
  }
  return true;
}

Result<Environment> read_environment(const GetEnv& getenv) {
  // Real clients set every variable and use "" for those that do not apply: empty = absent.
  const auto get = [&](std::string_view name) -> std::string {
    auto v = getenv(name);
    return v ? std::move(*v) : std::string();
  };
  const std::string command_text = get("CNI_COMMAND");
  if (command_text.empty()) {
    return Error(ErrorCode::kInvalidEnvironment,
                 "required environment variables missing: CNI_COMMAND");
  }
  Environment env;
  bool known = false;
  for (const auto& n : kCommands) {
    if (n.name == command_text) {
      env.command = n.command;
      known = true;
    }
  }
  if (!known) {
    return Error(ErrorCode::kInvalidEnvironment,
                 "unknown CNI_COMMAND: \"" + command_text.substr(0, 32) + "\"",
                 "expected ADD, DEL, CHECK, VERSION, GC or STATUS");
  }
  if (env.command == Command::kVersion) {
    // libcni sends CNI_NETNS=dummy CNI_IFNAME=dummy CNI_PATH=dummy for VERSION: look at nothing.
    return env;
  }

  env.container_id = get("CNI_CONTAINERID");
  env.netns = get("CNI_NETNS");
  env.ifname = get("CNI_IFNAME");
  env.args_text = get("CNI_ARGS");
  const std::string path_text = get("CNI_PATH");

  struct Var {
    std::string_view name;
    const std::string* value;
  };
  const std::array<Var, 4> vars = {{{"CNI_CONTAINERID", &env.container_id},
                                    {"CNI_NETNS", &env.netns},
                                    {"CNI_IFNAME", &env.ifname},
                                    {"CNI_PATH", &path_text}}};
  std::string missing;
  for (const auto& v : vars) {
    if (v.value->empty() && needs(env.command, v.name)) {
      missing += (missing.empty() ? "" : ", ") + std::string(v.name);
    }
  }
  if (!missing.empty()) {
    return Error(ErrorCode::kInvalidEnvironment,
                 "required environment variables missing: " + missing);
  }

  const bool attach = env.command == Command::kAdd || env.command == Command::kCheck ||
                      env.command == Command::kDel;
  if (attach) {
    if (!is_valid_identifier(env.container_id)) {
      return Error(ErrorCode::kInvalidEnvironment, "invalid characters in containerID",
                   env.container_id.substr(0, 256));
    }
    IPOIB_TRY(validate_ifname(env.ifname));
  }
  // Plugins open CNI_NETNS as a path (ns.GetNS); a relative one would resolve against whatever
  // directory the runtime (or Multus' chroot) left us in. DEL tolerates anything: it must not
  // block teardown over a netns it may not even need.
  if ((env.command == Command::kAdd || env.command == Command::kCheck) &&
      env.netns.front() != '/') {
    return Error(ErrorCode::kInvalidEnvironment, "CNI_NETNS must be an absolute path",
                 env.netns.substr(0, 256));
  }

  for (const std::string_view p : split(path_text, ':')) {
    if (!p.empty()) {
      env.path.emplace_back(p);
    }
  }

  auto args = parse_cni_args(env.args_text);
  if (args.ok()) {
    env.args = std::move(args).value();
  } else if (attach) {
    return std::move(args).error();
  }
  // GC and STATUS do not act on CNI_ARGS (runtimes send it empty): a bad one is not fatal.
  return env;
}

}  // namespace ipoib::cni
