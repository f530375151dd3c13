// libFuzzer target for the IPAM's flat file (whereabouts.conf): bytes read from a file on the
// node that fill whatever the inline `ipam` object leaves unset. The input is written to a
// private (unlinked) temporary file that is the only flat-file path searched; the inline object is
// minimal (half of the inputs also carry an inline range, so the merge with conflicting keys runs).
// Any bytes must give a validated config or kInvalidNetworkConfig naming the file or the key,
// never a crash; a loaded config's ranges are sane and its store_dir is absolute without "..".
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

// An unlinked temporary file, reached through /proc/self/fd: nothing is left in /tmp however
// the fuzzer exits (libFuzzer does not always run static destructors).
struct FlatFile {
  int fd = -1;
  std::string path;
};

const FlatFile& flat_file() {
  static const FlatFile file = [] {
    char tmpl[] = "/tmp/fuzz-ipam-flatfile-XXXXXX";
    FlatFile f;
    f.fd = ::mkstemp(tmpl);
    FUZZ_ASSERT(f.fd >= 0);
    ::unlink(tmpl);
    f.path = "/proc/self/fd/" + std::to_string(f.fd);
    return f;
  }();
  return file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const FlatFile& file = flat_file();
  FUZZ_ASSERT(::ftruncate(file.fd, 0) == 0);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pwrite(file.fd, data + done, size - done, static_cast<off_t>(done));
    FUZZ_ASSERT(n > 0);
    done += static_cast<std::size_t>(n);
  }
  const std::string& path = file.path;
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
