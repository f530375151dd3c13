// ipoib/base/log.h — levelled logging to stderr and/or a file; never to stdout.
//
//   Logger log;                                  // stderr at kWarning by default
//   log.set_level(LogLevel::kDebug);
//   IPOIB_TRY(log.open_file("/var/log/ipoib.log"));   // created 0600, appended
//   log.info("ADD " + container_id + " " + ifname);
//
// Library code does not log: it returns errors. The deciding layer (plugin, cmd) logs once.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "ipoib/base/error.h"
#include "ipoib/base/fd.h"

namespace ipoib {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kOff = 4 };

// Accepts debug, info, verbose (= info), warning, warn, error, panic (= error), off; any case.
std::optional<LogLevel> parse_log_level(std::string_view text);

// Escapes C0 controls, DEL and UTF-8-encoded C1 controls: "\n" "\r" "\t", else "\xHH" per byte.
// Everything else (printable ASCII, other UTF-8, backslash) is kept as is.
std::string escape_control_chars(std::string_view text);

class Logger {
 public:
  Logger() = default;

  void set_level(LogLevel level) { level_ = level; }
  [[nodiscard]] LogLevel level() const { return level_; }
  // Whether lines also go to stderr (default yes).
  void set_stderr(bool enabled) { to_stderr_ = enabled; }
  // Opens (creating 0600, O_APPEND|O_NOFOLLOW, non-blocking: base/file.h open_checked) the log
  // file; later lines go there too. Anything but a regular file (a FIFO, socket, device,
  // symlink) is refused with kIoFailure naming the path and what it is.
  Status open_file(const std::string& path);
  // A prefix put on each line, e.g. "ipoib[1234] ADD abcd/net1".
  void set_tag(std::string tag) { tag_ = std::move(tag); }

  // Writes one line "<UTC time>Z <level> <tag>: <msg>"; control characters in the tag and msg
  // are escaped (escape_control_chars), so a line is always exactly one line.
  void log(LogLevel level, std::string_view msg);
  void debug(std::string_view msg) { log(LogLevel::kDebug, msg); }
  void info(std::string_view msg) { log(LogLevel::kInfo, msg); }
  void warning(std::string_view msg) { log(LogLevel::kWarning, msg); }
  void error(std::string_view msg) { log(LogLevel::kError, msg); }

 private:
  LogLevel level_ = LogLevel::kWarning;
  bool to_stderr_ = true;
  Fd file_;
  std::string tag_;
};

}  // namespace ipoib
