// ipoib/etcd/client.h — a synchronous etcd v3 client over the JSON gateway (HTTP/1.1, optional
// TLS with client certificates, user/password authentication), with endpoint failover and
// bounded time-outs. The only module that uses Boost.Beast/Asio and OpenSSL.
//
//   IPOIB_TRY_ASSIGN(etcd::Config cfg, etcd::config_from(endpoints_csv, tls, auth));
//   IPOIB_TRY_ASSIGN(auto client, etcd::Client::create(std::move(cfg)));
//   etcd::TxnRequest t;
//   t.compare.push_back(etcd::Compare::absent(key));
//   t.success.push_back(etcd::PutRequest{key, owner});
//   auto r = client->txn(t, etcd::TxnRetry::kNotIdempotent);
//   if (!r.ok() && etcd::is_outcome_unknown(r.error())) { /* read key back to find out */ }
//
// Failure rules (every call):
//  * each attempt is bounded by Config::call_timeout (connect, TLS handshake, write and read
//    each end by then), the whole call by Config::operation_timeout;
//  * connection refused/reset, a time-out, HTTP 503 or gRPC code 14 (unavailable) moves on to
//    the next endpoint, rotating until the operation deadline; the endpoint that answered is
//    tried first by the next call (and by later Clients of this process with the same list);
//  * when no endpoint answers in time the error is kTryAgainLater (11) and names every endpoint
//    tried with its last error;
//  * a request that may have reached a member but got no answer (time-out or reset after the
//    request was sent, "request timed out", "leader changed") is retried only if it is
//    idempotent: range, put, delete_range, status always are; a Txn only when the caller says
//    so with TxnRetry::kIdempotent. Otherwise the error is kTryAgainLater with
//    is_outcome_unknown() true and the caller must find out by reading;
//  * an invalid or expired auth token is renewed once per call; a wrong user or password is
//    kInvalidNetworkConfig naming authentication, as is a TLS certificate that fails
//    verification at every endpoint.
// One connection per endpoint is kept alive across calls. A Client is not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/etcd/wire.h"

namespace ipoib::etcd {

struct Endpoint {
  bool tls = false;
  std::string host;  // a name, an IPv4 address or an IPv6 address without brackets
  std::uint16_t port = 0;
  [[nodiscard]] std::string url() const;  // "https://[::1]:2379"
};

// Parses whereabouts' etcd_host: comma-separated http(s)://host:port (no path). A missing port
// is 2379. Errors are kInvalidNetworkConfig naming the bad item.
Result<std::vector<Endpoint>> parse_endpoints(std::string_view comma_separated);

// Reads a file that holds a secret (a private key, a password) only if it is a regular file
// that group and others cannot read, write or execute (mode 0600 or stricter). Otherwise
// kInvalidNetworkConfig: "<what> <path>: mode 0644 lets others read it; run: chmod 600 <path>".
Result<std::string> read_private_file(const std::string& path, std::string_view what);

struct Config {
  std::vector<Endpoint> endpoints;
  std::string username;  // empty: no authentication
  std::string password;
  std::string cert_file;     // client certificate chain (PEM), with key_file
  std::string key_file;      // its private key (PEM); must be mode 0600 or stricter
  std::string ca_cert_file;  // CA bundle for the members' certificates; empty: the system's
  std::chrono::milliseconds call_timeout{2000};
  std::chrono::milliseconds operation_timeout{10000};
};

// Whereabouts' keys as they appear in an IPAM config (etcd_host, etcd_username, etcd_password,
// etcd_cert_file, etcd_key_file, etcd_ca_cert_file). password_file, when set, is read with
// read_private_file and replaces password (trailing newline dropped).
struct ConfigKeys {
  std::string etcd_host;
  std::string etcd_username;
  std::string etcd_password;
  std::string etcd_password_file;
  std::string etcd_cert_file;
  std::string etcd_key_file;
  std::string etcd_ca_cert_file;
};
Result<Config> config_from(const ConfigKeys& keys);

enum class TxnRetry { kIdempotent, kNotIdempotent };

// True for the error of a write whose outcome is unknown (see the rules above).
bool is_outcome_unknown(const Error& e);

class Client {
 public:
  // Validates the config and loads the TLS files (key file mode checked here). No I/O to etcd.
  static Result<std::unique_ptr<Client>> create(Config config);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Result<RangeResponse> range(const RangeRequest& r);
  Result<PutResponse> put(const PutRequest& r);
  Result<DeleteRangeResponse> delete_range(const DeleteRangeRequest& r);
  Result<TxnResponse> txn(const TxnRequest& r, TxnRetry retry);
  // Several reads in one round trip, at one revision: a Txn without compares whose success branch
  // holds only `reads` (at most etcd's --max-txn-ops, 128 by default), retried like a read. The
  // responses are in the order of `reads`, each with the Txn's header (its revision is the one
  // every read saw).
  Result<std::vector<RangeResponse>> read(const std::vector<RangeRequest>& reads);
  // Grants a lease of `ttl_seconds` and returns its ID (retried like a read: a lease granted
  // twice is one more lease that expires unused).
  Result<std::int64_t> lease_grant(std::int64_t ttl_seconds);
  // Status of whichever member answers (with failover).
  Result<StatusResponse> status();
  // Status of one endpoint, one attempt bounded by call_timeout, no failover (doctor, tests).
  Result<StatusResponse> status_of(std::size_t endpoint_index);

  [[nodiscard]] const std::vector<Endpoint>& endpoints() const;
  // The endpoint the next call tries first.
  [[nodiscard]] std::size_t preferred_endpoint() const;

  class Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ipoib::etcd
