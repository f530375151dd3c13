// tests/support/temp_dir.h — the one temporary-directory owner for the C++ tests.
//
//   ipoib::testing::TempDir dir("store-test");      // /tmp/store-test-XXXXXX, removed at scope end
//   write(dir.abs("pool.json"), ...);
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace ipoib::testing {

class TempDir {
 public:
  // Creates <base>/<prefix>-XXXXXX (mode 0700); throws when that fails, so a test never runs
  // against an empty path.
  explicit TempDir(const std::string& prefix = "ipoib-test", const std::string& base = "/tmp") {
    std::string tmpl = base + "/" + prefix + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("mkdtemp " + tmpl + " failed");
    }
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;  // never throws from a destructor; symlinks are removed, not followed
    std::filesystem::remove_all(path_, ec);
  }

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string abs(const std::string& relative) const {
    return path_ + "/" + relative;
  }

 private:
  std::string path_;
};

}  // namespace ipoib::testing
