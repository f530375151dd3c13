// Per-netns sysctls through /proc/sys (see include/ipoib/netns/netns.h).
#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <string>
#include <vector>

#include "ipoib/base/errno_error.h"
#include "ipoib/base/fd.h"
#include "ipoib/base/file.h"
#include "ipoib/base/strings.h"
#include "ipoib/netns/netns.h"

namespace ipoib::netns {
namespace {

bool component_ok(std::string_view c) {
  if (c.empty() || c == "." || c == "..") {
    return false;
  }
  for (char ch : c) {
    if (ch == '\0' || std::isspace(static_cast<unsigned char>(ch)) != 0) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string ipv6_conf_sysctl(std::string_view ifname, std::string_view key) {
  return "net/ipv6/conf/" + std::string(ifname) + "/" + std::string(key);
}

std::string ipv4_conf_sysctl(std::string_view ifname, std::string_view key) {
  return "net/ipv4/conf/" + std::string(ifname) + "/" + std::string(key);
}

Result<std::string> sysctl_path(std::string_view name) {
  const char sep = name.find('/') != std::string_view::npos ? '/' : '.';
  std::vector<std::string_view> parts = split(name, sep);
  auto bad = [&](std::string_view why) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "sysctl \"" + std::string(name) + "\": " + std::string(why));
  };
  if (parts.size() < 2 || parts.front() != "net") {
    return bad("only net/... sysctls are per network namespace");
  }
  std::string path = "/proc/sys";
  for (std::string_view part : parts) {
    if (!component_ok(part)) {
      return bad("empty, '.', '..' or whitespace component");
    }
    path += '/';
    path += part;
  }
  return path;
}

Status write_sysctl(std::string_view name, std::string_view value) {
  IPOIB_TRY_ASSIGN(std::string path, sysctl_path(name));
  Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return errno_error(ErrorCode::kIoFailure, "write sysctl " + std::string(name));
  }
  std::string text(value);
  text += '\n';
  // proc_dostring/proc_dointvec take the whole value in one write.
  ssize_t n = 0;
  do {
    n = ::write(fd.get(), text.data(), text.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    return errno_error(ErrorCode::kIoFailure,
                       "write sysctl " + std::string(name) + "=" + std::string(value));
  }
  if (static_cast<std::size_t>(n) != text.size()) {
    return Error(ErrorCode::kIoFailure, "write sysctl " + std::string(name) + ": short write");
  }
  return ok_status();
}

Result<std::string> read_sysctl(std::string_view name) {
  IPOIB_TRY_ASSIGN(std::string path, sysctl_path(name));
  auto text = read_file(AT_FDCWD, path, std::size_t{64} * 1024, ErrorCode::kIoFailure,
                        FollowSymlinks::kYes);
  if (!text) {
    return std::move(text).error().with_context("read sysctl " + std::string(name));
  }
  std::string out = std::move(text).value();
  while (!out.empty() && out.back() == '\n') {
    out.pop_back();
  }
  return out;
}

}  // namespace ipoib::netns
