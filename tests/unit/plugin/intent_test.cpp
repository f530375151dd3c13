#include "ipoib/plugin/intent.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

using namespace ipoib;
using namespace ipoib::plugin;

namespace {

struct Scratch {
  std::string path;
  Scratch() {
    char tmpl[] = "/tmp/plugin-unit-intent-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~Scratch() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST_CASE("intents: record, look up, remove; the directory is created 0700") {
  Scratch s;
  IntentDirectory intents(s.path + "/run");
  const ChildOwner owner{"ibnet", {"4f2a", "net1"}};
  CHECK_FALSE(intents.lookup("ipt0123456789ab"));
  REQUIRE(intents.record("ipt0123456789ab", owner).ok());
  struct stat st {};
  REQUIRE(::stat((s.path + "/run").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  CHECK(intents.lookup("ipt0123456789ab") == owner);
  CHECK_FALSE(intents.lookup("ipt0123456789ac"));
  REQUIRE(intents.remove("ipt0123456789ab").ok());
  CHECK_FALSE(intents.lookup("ipt0123456789ab"));
  CHECK(intents.remove("ipt0123456789ab").ok());  // nothing to remove is fine
  CHECK(std::filesystem::is_empty(s.path + "/run"));
}

TEST_CASE("intents: nothing untrustworthy proves anything") {
  Scratch s;
  IntentDirectory intents(s.path);
  const ChildOwner owner{"ibnet", {"4f2a", "net1"}};
  REQUIRE(intents.record("iptaaaaaaaaaaaa", owner).ok());

  SECTION("a directory others can write") {
    REQUIRE(::chmod(s.path.c_str(), 0777) == 0);
    CHECK_FALSE(intents.lookup("iptaaaaaaaaaaaa"));
    auto refused = intents.record("iptbbbbbbbbbbbb", owner);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code() == ErrorCode::kIoFailure);
    CHECK(refused.error().msg().find("writable by group or others") != std::string::npos);
    CHECK(intents.remove("iptaaaaaaaaaaaa").ok());
    CHECK(std::filesystem::exists(s.path + "/iptaaaaaaaaaaaa"));  // never touched there
  }
  SECTION("a symlinked directory") {
    const std::string link = s.path + "-link";
    REQUIRE(::symlink(s.path.c_str(), link.c_str()) == 0);
    CHECK_FALSE(IntentDirectory(link).lookup("iptaaaaaaaaaaaa"));
    CHECK_FALSE(IntentDirectory(link).record("iptbbbbbbbbbbbb", owner).ok());
    ::unlink(link.c_str());
  }
  SECTION("a FIFO, a symlink or garbage under the name (read without blocking)") {
    REQUIRE(::mkfifo((s.path + "/iptcccccccccccc").c_str(), 0600) == 0);
    CHECK_FALSE(intents.lookup("iptcccccccccccc"));
    REQUIRE(::symlink((s.path + "/iptaaaaaaaaaaaa").c_str(),
                      (s.path + "/iptdddddddddddd").c_str()) == 0);
    CHECK_FALSE(intents.lookup("iptdddddddddddd"));
    std::ofstream(s.path + "/ipteeeeeeeeeeee") << "{\"network\": \"n\"}";
    CHECK_FALSE(intents.lookup("ipteeeeeeeeeeee"));
    std::ofstream(s.path + "/iptffffffffffff") << "not json";
    CHECK_FALSE(intents.lookup("iptffffffffffff"));
  }
  SECTION("names that are not link names") {
    CHECK_FALSE(intents.lookup("../iptaaaaaaaaaaaa"));
    CHECK_FALSE(intents.lookup(".hidden"));
    CHECK_FALSE(intents.lookup(""));
    CHECK_FALSE(intents.record("../x", owner).ok());
  }
}
