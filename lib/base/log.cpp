#include "ipoib/base/log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "ipoib/base/errno_error.h"
#include "ipoib/base/strings.h"

namespace ipoib {
namespace {

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
    case LogLevel::kOff:
      break;
  }
  return "off";
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return;  // logging never fails the operation
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace

std::optional<LogLevel> parse_log_level(std::string_view text) {
  struct Name {
    std::string_view name;
    LogLevel level;
  };
  static constexpr Name kNames[] = {
      {"debug", LogLevel::kDebug},   {"info", LogLevel::kInfo},      {"verbose", LogLevel::kInfo},
      {"warning", LogLevel::kWarning}, {"warn", LogLevel::kWarning}, {"error", LogLevel::kError},
      {"panic", LogLevel::kError},   {"off", LogLevel::kOff},
  };
  for (const auto& n : kNames) {
    if (iequals(text, n.name)) {
      return n.level;
    }
  }
  return std::nullopt;
}

Status Logger::open_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) {
    return errno_error(ErrorCode::kIoFailure, "open log file " + path);
  }
  file_ = std::move(fd);
  return {};
}

void Logger::log(LogLevel level, std::string_view msg) {
  if (level < level_ || level == LogLevel::kOff) {
    return;
  }
  char stamp[40] = "";
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  tm tm_utc{};
  ::gmtime_r(&ts.tv_sec, &tm_utc);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm_utc);
  std::string line;
  line.reserve(msg.size() + tag_.size() + 48);
  line.append(stamp).append("Z ").append(level_name(level)).append(" ");
  if (!tag_.empty()) {
    line.append(tag_).append(": ");
  }
  line.append(msg).append("\n");
  if (to_stderr_) {
    write_all(STDERR_FILENO, line);
  }
  if (file_.valid()) {
    write_all(file_.get(), line);
  }
}

}  // namespace ipoib
