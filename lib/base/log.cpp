#include "ipoib/base/log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "ipoib/base/errno_error.h"
#include "ipoib/base/file.h"
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

}  // namespace

std::optional<LogLevel> parse_log_level(std::string_view text) {
  struct Name {
    std::string_view name;
    LogLevel level;
  };
  static constexpr Name kNames[] = {
      {"debug", LogLevel::kDebug},     {"info", LogLevel::kInfo},    {"verbose", LogLevel::kInfo},
      {"warning", LogLevel::kWarning}, {"warn", LogLevel::kWarning}, {"error", LogLevel::kError},
      {"panic", LogLevel::kError},     {"off", LogLevel::kOff},
  };
  for (const auto& n : kNames) {
    if (iequals(text, n.name)) {
      return n.level;
    }
  }
  return std::nullopt;
}

Status Logger::open_file(const std::string& path) {
  // Non-blocking and type-checked: a FIFO, socket or device named as the log file must not hang
  // the plugin (a FIFO without a reader would block open(2) forever).
  auto fd = open_checked(AT_FDCWD, path, O_WRONLY | O_CREAT | O_APPEND, FileType::kRegular,
                         ErrorCode::kIoFailure, 0600);
  if (!fd.ok()) {
    return std::move(fd).error().with_context("open log file");
  }
  file_ = std::move(fd).value();
  return {};
}

std::string escape_control_chars(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    // C1 controls (U+0080..U+009F) in UTF-8 are C2 80..C2 9F; 0x9b alone is a CSI to some
    // terminals, so both encodings are escaped byte by byte.
    const bool c1 = c == 0xc2 && i + 1 < text.size() &&
                    static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(text[i + 1]) <= 0x9f;
    if (c >= 0x20 && c != 0x7f && !c1) {
      out += static_cast<char>(c);
      continue;
    }
    auto hex = [&](unsigned char b) {
      out += "\\x";
      out += kHex[b >> 4];
      out += kHex[b & 0xf];
    };
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        hex(c);
        if (c1) {
          hex(static_cast<unsigned char>(text[++i]));
        }
    }
  }
  return out;
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
  (void)std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm_utc);  // fits: 19 bytes
  std::string line;
  line.reserve(msg.size() + tag_.size() + 48);
  line.append(stamp).append("Z ").append(level_name(level)).append(" ");
  if (!tag_.empty()) {
    line.append(escape_control_chars(tag_)).append(": ");
  }
  // Escaped here, once: values from the environment and the config (a newline in K8S_POD_NAME)
  // cannot forge a log line or send terminal escapes.
  line.append(escape_control_chars(msg)).append("\n");
  if (to_stderr_) {
    (void)write_all(STDERR_FILENO, line, "stderr");  // logging never fails the operation
  }
  if (file_.valid()) {
    (void)write_all(file_.get(), line, "log file");
  }
}

}  // namespace ipoib
