// etcd client configuration: endpoint lists, secret files (ipoib/etcd/client.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "ipoib/base/errno_error.h"
#include "ipoib/base/fd.h"
#include "ipoib/base/file.h"
#include "ipoib/base/strings.h"
#include "ipoib/etcd/client.h"

namespace ipoib::etcd {
namespace {

constexpr std::size_t kMaxSecretBytes = 1 << 20;

Error config_error(std::string msg) { return {ErrorCode::kInvalidNetworkConfig, std::move(msg)}; }

Result<Endpoint> parse_endpoint(std::string_view item) {
  Endpoint ep;
  std::string_view rest;
  if (starts_with(item, "http://")) {
    rest = item.substr(7);
  } else if (starts_with(item, "https://")) {
    ep.tls = true;
    rest = item.substr(8);
  } else {
    return config_error("etcd_host: \"" + std::string(item) +
                        "\": must start with http:// or https://");
  }
  if (!rest.empty() && rest.back() == '/') {
    rest.remove_suffix(1);
  }
  if (rest.find('/') != std::string_view::npos) {
    return config_error("etcd_host: \"" + std::string(item) + "\": no path allowed");
  }
  std::string_view port_text;
  if (starts_with(rest, "[")) {
    auto close = rest.find(']');
    if (close == std::string_view::npos) {
      return config_error("etcd_host: \"" + std::string(item) + "\": unbalanced [");
    }
    ep.host = std::string(rest.substr(1, close - 1));
    auto after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return config_error("etcd_host: \"" + std::string(item) + "\": junk after ]");
      }
      port_text = after.substr(1);
    }
  } else {
    auto colon = rest.rfind(':');
    if (colon != std::string_view::npos && rest.find(':') != colon) {
      return config_error("etcd_host: \"" + std::string(item) +
                          "\": write an IPv6 address in brackets");
    }
    ep.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = rest.substr(colon + 1);
    }
  }
  if (ep.host.empty()) {
    return config_error("etcd_host: \"" + std::string(item) + "\": no host");
  }
  ep.port = 2379;
  if (!port_text.empty() || rest.find(':') != std::string_view::npos) {
    auto port = parse_uint(port_text, 16);
    if (!port.ok() || *port == 0) {
      return config_error("etcd_host: \"" + std::string(item) + "\": bad port");
    }
    ep.port = static_cast<std::uint16_t>(*port);
  }
  return ep;
}

std::string mode_string(mode_t mode) {
  char buf[8];
  (void)std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

}  // namespace

std::string Endpoint::url() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return std::string(tls ? "https://" : "http://") + h + ":" + std::to_string(port);
}

Result<std::vector<Endpoint>> parse_endpoints(std::string_view comma_separated) {
  std::vector<Endpoint> out;
  for (std::string_view item : split(comma_separated, ',')) {
    item = trim(item);
    if (item.empty()) {
      continue;
    }
    IPOIB_TRY_ASSIGN(Endpoint ep, parse_endpoint(item));
    out.push_back(std::move(ep));
  }
  if (out.empty()) {
    return config_error("etcd_host: no endpoint given (http(s)://host:port, comma-separated)");
  }
  return out;
}

Result<std::string> read_private_file(const std::string& path, std::string_view what) {
  std::string name = std::string(what) + " " + path;
  // Followed symlinks are fine (Kubernetes mounts Secrets through them); the checks apply to
  // the file actually opened, so nothing can swap it between check and read. Opened without
  // blocking: a FIFO, socket or device is refused at once.
  auto opened = open_checked(AT_FDCWD, path, O_RDONLY, FileType::kRegular,
                             ErrorCode::kInvalidNetworkConfig, 0, FollowSymlinks::kYes);
  if (!opened) {
    return config_error(std::string(what) + " " + opened.error().msg());
  }
  const Fd fd = std::move(opened).value();
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return errno_error(ErrorCode::kInvalidNetworkConfig, name);
  }
  if ((st.st_mode & 077) != 0) {
    return config_error(name + ": mode " + mode_string(st.st_mode) +
                        " lets group or others access it; it must be 0600 or stricter: chmod 600 " +
                        path);
  }
  auto text = read_all(fd.get(), name, kMaxSecretBytes);
  if (!text) {
    return config_error(text.error().msg());
  }
  return text;
}

Result<Config> config_from(const ConfigKeys& keys) {
  Config cfg;
  IPOIB_TRY_ASSIGN(cfg.endpoints, parse_endpoints(keys.etcd_host));
  cfg.username = keys.etcd_username;
  cfg.password = keys.etcd_password;
  if (!keys.etcd_password_file.empty()) {
    IPOIB_TRY_ASSIGN(cfg.password,
                     read_private_file(keys.etcd_password_file, "etcd password file"));
    while (!cfg.password.empty() && (cfg.password.back() == '\n' || cfg.password.back() == '\r')) {
      cfg.password.pop_back();
    }
  }
  if (cfg.username.empty() && !cfg.password.empty()) {
    return config_error("etcd_password is set but etcd_username is not");
  }
  cfg.cert_file = keys.etcd_cert_file;
  cfg.key_file = keys.etcd_key_file;
  cfg.ca_cert_file = keys.etcd_ca_cert_file;
  return cfg;
}

}  // namespace ipoib::etcd
