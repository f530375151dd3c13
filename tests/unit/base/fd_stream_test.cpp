// base/fd_stream.h: what a tool prints reaches the descriptor whole, in order, and a reader that
// went away fails the stream instead of the process.
#include "ipoib/base/fd_stream.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "ipoib/base/fd.h"
#include "ipoib/base/file.h"

namespace {

struct Pipe {
  ipoib::Fd read_end;
  ipoib::Fd write_end;
  Pipe() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    read_end = ipoib::Fd(fds[0]);
    write_end = ipoib::Fd(fds[1]);
    // Room for everything a case writes: nothing blocks before the reader reads.
    REQUIRE(::fcntl(write_end.get(), F_SETPIPE_SZ, 1 << 20) >= (1 << 20));
  }
  std::string drain() {
    write_end = ipoib::Fd();
    auto text = ipoib::read_all(read_end.get(), "pipe", 1 << 20);
    REQUIRE(text.ok());
    return *text;
  }
};

}  // namespace

TEST_CASE("FdOstream buffers until flush or destruction, then writes everything in order") {
  Pipe p;
  std::string expected;
  {
    ipoib::FdOstream out(p.write_end.get());
    out << "first " << 42 << '\n';
    expected += "first 42\n";
    char probe = 0;
    REQUIRE(::fcntl(p.read_end.get(), F_SETFL, O_NONBLOCK) == 0);
    CHECK(::read(p.read_end.get(), &probe, 1) == -1);  // still buffered
    // More than the 4 KiB buffer, in pieces that straddle its end.
    for (int i = 0; i < 1000; ++i) {
      const std::string line = "line " + std::to_string(i) + "\n";
      out << line;
      expected += line;
    }
  }
  REQUIRE(::fcntl(p.read_end.get(), F_SETFL, 0) == 0);
  CHECK(p.drain() == expected);
}

TEST_CASE("FdOstream with Flush::kEveryWrite writes each insertion at once, as std::cerr does") {
  Pipe p;
  ipoib::FdOstream err(p.write_end.get(), ipoib::Flush::kEveryWrite);
  err << "error: "
      << "disk full\n";
  char got[32] = {};
  REQUIRE(::fcntl(p.read_end.get(), F_SETFL, O_NONBLOCK) == 0);
  CHECK(std::string(got, static_cast<std::size_t>(::read(p.read_end.get(), got, sizeof got))) ==
        "error: disk full\n");
}

TEST_CASE("FdOstream to a closed pipe sets badbit and does not kill the process") {
  Pipe p;
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction previous {};
  REQUIRE(::sigaction(SIGPIPE, &ignore, &previous) == 0);
  p.read_end = ipoib::Fd();
  {
    ipoib::FdOstream out(p.write_end.get());
    out << std::string(10000, 'x');  // more than the buffer: written (and refused) here
    CHECK(out.bad());
    out << "more";
    CHECK(out.bad());
  }
  REQUIRE(::sigaction(SIGPIPE, &previous, nullptr) == 0);
}
