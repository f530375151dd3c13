// Replays every input under tests/fuzz/regressions/fuzz_cni_config/ (crashes the fuzzer once
// found, kept so they stay fixed), the seed corpus and the shipped conf/ examples through the
// fuzzer's entry point. A regression aborts the test binary, which fails unit.cni.
#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "test_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> files_under(const fs::path& dir, bool configs_only) {
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) {
    return out;
  }
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) {
      continue;
    }
    const auto ext = e.path().extension();
    if (!configs_only || ext == ".json" || ext == ".conf" || ext == ".conflist") {
      out.push_back(e.path());
    }
  }
  return out;
}

int replay(const fs::path& path) {
  const std::string bytes = ipoib::cni::testing::read_text_file(path.string());
  return LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}

}  // namespace

TEST_CASE("fuzz regressions replay cleanly", "[cni][fuzz]") {
  const auto files =
      files_under(fs::path(IPOIB_FUZZ_DIR) / "regressions" / "fuzz_cni_config", false);
  REQUIRE_FALSE(files.empty());
  for (const auto& f : files) {
    INFO(f.string());
    CHECK(replay(f) == 0);
  }
}

TEST_CASE("fuzz seed corpus and conf/ examples replay cleanly", "[cni][fuzz]") {
  auto files = files_under(fs::path(IPOIB_FUZZ_DIR) / "corpus" / "fuzz_cni_config", false);
  REQUIRE(files.size() >= 4);
  for (auto& f : files_under(IPOIB_CONF_DIR, true)) {
    files.push_back(f);
  }
  for (const auto& f : files) {
    INFO(f.string());
    CHECK(replay(f) == 0);
  }
}
