// The deferred OpenSSL CPUID probe (lib/etcd/connection.cpp): when main() starts, libcrypto has
// not probed the CPU; creating the first TLS context makes it probe. Exit 0 when both hold.
#include <openssl/ssl.h>

#include <cstdio>

// libcrypto's capability vector (crypto/cpuid.c); hidden, but reachable inside a static link.
extern "C" unsigned int OPENSSL_ia32cap_P[];  // NOLINT(readability-identifier-naming)

namespace {
// crypto/cpuid.c sets bit 10 of word 0 once the vector holds the probe's result; bit 26 of word 0
// is the CPU's SSE2 flag (CPUID.1:EDX), which every x86_64 CPU has.
constexpr unsigned kProbed = 1U << 10;
constexpr unsigned kSse2 = 1U << 26;
}  // namespace

int main() {
  if (OPENSSL_ia32cap_P[0] != 0) {
    std::fprintf(stderr, "FAIL: libcrypto probed the CPU at start-up (word 0 = %#x)\n",
                 OPENSSL_ia32cap_P[0]);
    return 1;
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) {
    std::fprintf(stderr, "FAIL: SSL_CTX_new\n");
    return 1;
  }
  SSL_CTX_free(ctx);
  const unsigned word0 = OPENSSL_ia32cap_P[0];
  if ((word0 & kProbed) == 0 || (word0 & kSse2) == 0) {
    std::fprintf(stderr, "FAIL: no CPU probe after the first TLS context (word 0 = %#x)\n", word0);
    return 1;
  }
  std::printf("ok: probe deferred; after the first TLS context word 0 = %#x\n", word0);
  return 0;
}
