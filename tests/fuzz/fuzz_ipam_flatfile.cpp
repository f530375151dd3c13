// libFuzzer target for the IPAM's flat file (whereabouts.conf): bytes read from a file on the
// node that fill whatever the inline `ipam` object leaves unset. The input is written to a
// private temporary file that is the only flat-file path searched; the inline object is minimal
// (half of the inputs also carry an inline range, so the merge with conflicting keys runs).
// Any bytes must give a validated config or kInvalidNetworkConfig naming the file or the key,
// never a crash; a loaded config's ranges are sane and its store_dir is absolute without "..".
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ipoib/ipam/config.h"

namespace {

#define FUZZ_ASSERT(cond)                                                                 \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "fuzz_ipam_flatfile: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (false)

const std::string& flat_file_path() {
  static const std::string path = [] {
    char tmpl[] = "/tmp/fuzz-ipam-flatfile-XXXXXX";
    const int fd = ::mkstemp(tmpl);
    FUZZ_ASSERT(fd >= 0);
    ::close(fd);
    return std::string(tmpl);
  }();
  return path;
}

struct RemoveAtExit {
  ~RemoveAtExit() { ::unlink(flat_file_path().c_str()); }
} remove_at_exit;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = flat_file_path();
  {
    const int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    FUZZ_ASSERT(fd >= 0);
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = ::write(fd, data + done, size - done);
      FUZZ_ASSERT(n > 0);
      done += static_cast<std::size_t>(n);
    }
    ::close(fd);
  }
  nlohmann::json inline_ipam = {{"type", "whereabouts"}};
  if (size % 2 == 1) {
    inline_ipam["range"] = "10.1.0.0/24";
  }
  const ipoib::ipam::ConfigSources sources{{path}};
  auto cfg = ipoib::ipam::load_ipam_config(inline_ipam, sources);
  auto location = ipoib::ipam::load_store_location(inline_ipam, sources);
  if (!cfg) {
    FUZZ_ASSERT(cfg.error().code() == ipoib::ErrorCode::kInvalidNetworkConfig);
    return 0;
  }
  // DEL reads only the location: it must accept whatever ADD accepted, identically.
  FUZZ_ASSERT(location.ok());
  FUZZ_ASSERT(location->store_dir == cfg->location.store_dir);
  FUZZ_ASSERT(location->network_name == cfg->location.network_name);
  FUZZ_ASSERT(ipoib::ipam::validate_store_dir(cfg->location.store_dir, "store_dir").ok());
  FUZZ_ASSERT(!cfg->ranges.empty());
  for (const auto& r : cfg->ranges) {
    FUZZ_ASSERT(!(r.last < r.first) && r.subnet.contains(r.first) && r.subnet.contains(r.last));
  }
  return 0;
}
