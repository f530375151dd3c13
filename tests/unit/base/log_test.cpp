// base/log.h: control characters never forge a line; a hostile log file never blocks.
#include "ipoib/base/log.h"

#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>

#include "ipoib/base/file.h"
#include "temp_dir.h"

using ipoib::escape_control_chars;
using ipoib::Logger;
using ipoib::LogLevel;
using ipoib::testing::TempDir;

TEST_CASE("escape_control_chars escapes C0, DEL and C1, keeps UTF-8 and backslash") {
  CHECK(escape_control_chars("plain text / 1.2.3.4") == "plain text / 1.2.3.4");
  CHECK(escape_control_chars("a\nb\rc\td") == "a\\nb\\rc\\td");
  CHECK(escape_control_chars("\x1b[31mred") == "\\x1b[31mred");
  CHECK(escape_control_chars(std::string("nul\0x", 5)) == "nul\\x00x");
  CHECK(escape_control_chars("del\x7f") == "del\\x7f");
  CHECK(escape_control_chars("csi\xc2\x9b"
                             "2J") == "csi\\xc2\\x9b2J");
  CHECK(escape_control_chars("caf\xc3\xa9 \xe2\x9c\x93") == "caf\xc3\xa9 \xe2\x9c\x93");
  CHECK(escape_control_chars("back\\slash") == "back\\slash");
  CHECK(escape_control_chars("trailing\xc2") == "trailing\xc2");  // not a C1 sequence
}

TEST_CASE("a newline in a logged value cannot forge a log line") {
  TempDir dir("log-test");
  const std::string path = dir.abs("plugin.log");
  Logger log;
  log.set_stderr(false);
  log.set_level(LogLevel::kDebug);
  REQUIRE(log.open_file(path).ok());
  log.set_tag("ipoib[1] ADD c1/net1\n2026-01-01T00:00:00Z error forged: tag");
  log.info("pod ns/evil\n2026-01-01T00:00:00Z error forged line");
  auto text = ipoib::read_file(AT_FDCWD, path, 1 << 16);
  REQUIRE(text.ok());
  CHECK(std::count(text->begin(), text->end(), '\n') == 1);
  CHECK(text->find("ns/evil\\n2026-01-01T00:00:00Z error forged line\n") != std::string::npos);
  CHECK(text->find("c1/net1\\n2026") != std::string::npos);
}

TEST_CASE("open_file refuses a FIFO, a device and a symlink at once") {
  TempDir dir("log-test");
  const std::string fifo = dir.abs("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);  // without a reader, a blocking open never returns
  Logger log;
  auto f = log.open_file(fifo);
  REQUIRE_FALSE(f.ok());
  CHECK(f.error().msg() == "open log file: " + fifo + " is a FIFO, not a regular file");
  auto dev = log.open_file("/dev/null");
  REQUIRE_FALSE(dev.ok());
  CHECK(dev.error().msg().find("character device") != std::string::npos);
  REQUIRE(::symlink("/etc/passwd", dir.abs("link").c_str()) == 0);
  auto link = log.open_file(dir.abs("link"));
  REQUIRE_FALSE(link.ok());
  CHECK(link.error().msg().find("symbolic link") != std::string::npos);
  REQUIRE(log.open_file(dir.abs("ok.log")).ok());
  struct stat st {};
  REQUIRE(::stat(dir.abs("ok.log").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("parse_log_level: the accepted names, any case; anything else is unknown") {
  CHECK(ipoib::parse_log_level("DEBUG") == LogLevel::kDebug);
  CHECK(ipoib::parse_log_level("verbose") == LogLevel::kInfo);
  CHECK(ipoib::parse_log_level("Warn") == LogLevel::kWarning);
  CHECK(ipoib::parse_log_level("panic") == LogLevel::kError);
  CHECK(ipoib::parse_log_level("off") == LogLevel::kOff);
  CHECK_FALSE(ipoib::parse_log_level("loud").has_value());
  CHECK_FALSE(ipoib::parse_log_level("").has_value());
}
