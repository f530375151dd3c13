// etcd v3 client: failover, time-outs, authentication (ipoib/etcd/client.h).
#include "ipoib/etcd/client.h"

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "ipoib/base/file.h"
#include "lib/etcd/connection.h"

namespace ipoib::etcd {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr std::string_view kOutcomeUnknownDetails = "etcd-outcome-unknown";

// Messages of errors after which a write was certainly not applied (etcd rejects these before
// proposing, or raft dropped the proposal).
bool certainly_not_applied(std::string_view msg) {
  for (std::string_view m :
       {"etcdserver: no leader", "etcdserver: too many requests", "etcdserver: not capable",
        "raft proposal dropped", "etcdserver: unhealthy cluster"}) {
    if (msg.find(m) != std::string_view::npos) {
      return true;
    }
  }
  return false;
}

// A reply that means "this member cannot serve now; another may".
bool member_unavailable(unsigned http_status, const std::optional<GatewayError>& ge) {
  if (http_status == 503) {
    return true;
  }
  if (!ge) {
    return false;
  }
  return ge->code == kGrpcUnavailable || ge->code == kGrpcDeadlineExceeded ||
         ge->message.find("raft proposal dropped") != std::string::npos;
}

bool invalid_token(const std::optional<GatewayError>& ge) {
  return ge && (ge->code == kGrpcUnauthenticated ||
                ge->message.find("invalid auth token") != std::string::npos);
}

std::string ms_string(milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

// The endpoint that last answered, per endpoint list, shared by the Clients of this process.
struct RememberedEndpoints {
  std::mutex mu;
  std::map<std::string, std::size_t> by_list;
};

RememberedEndpoints& remembered() {
  static RememberedEndpoints r;
  return r;
}

std::size_t remembered_endpoint(const std::string& list) {
  auto& r = remembered();
  std::lock_guard lock(r.mu);
  auto it = r.by_list.find(list);
  return it == r.by_list.end() ? 0 : it->second;
}

void remember_endpoint(const std::string& list, std::size_t index) {
  auto& r = remembered();
  std::lock_guard lock(r.mu);
  r.by_list[list] = index;
}

}  // namespace

bool is_outcome_unknown(const Error& e) { return e.details() == kOutcomeUnknownDetails; }

class Client::Impl {
 public:
  enum class Kind { kIdempotent, kNotIdempotent };

  explicit Impl(Config cfg) : cfg_(std::move(cfg)) {
    for (const auto& ep : cfg_.endpoints) {
      list_key_ += ep.url() + ",";
    }
  }

  Status init() {
    bool any_tls = false;
    for (const auto& ep : cfg_.endpoints) {
      any_tls = any_tls || ep.tls;
    }
    if (cfg_.endpoints.empty()) {
      return Error(ErrorCode::kInvalidNetworkConfig, "etcd: no endpoints");
    }
    if (cfg_.cert_file.empty() != cfg_.key_file.empty()) {
      return Error(ErrorCode::kInvalidNetworkConfig,
                   "etcd_cert_file and etcd_key_file must be given together");
    }
    if (any_tls) {
      IPOIB_TRY(init_tls());
    } else if (!cfg_.cert_file.empty() || !cfg_.ca_cert_file.empty()) {
      return Error(ErrorCode::kInvalidNetworkConfig,
                   "etcd certificate files are set but no etcd_host endpoint is https://");
    }
    for (const auto& ep : cfg_.endpoints) {
      conns_.push_back(std::make_unique<detail::Connection>(ioc_, ep.tls ? &*tls_ : nullptr, ep));
    }
    preferred_ = remembered_endpoint(list_key_) % cfg_.endpoints.size();
    return ok_status();
  }

  Result<std::string> call(std::string_view path, const std::string& body, Kind kind) {
    const auto start = steady_clock::now();
    const auto deadline = start + cfg_.operation_timeout;
    const std::size_t n = conns_.size();
    std::vector<std::string> last_error(n);
    std::vector<int> failures(n, 0);
    bool only_tls_errors = true;
    bool reauthenticated = false;
    milliseconds pause{25};
    for (std::size_t attempt = 0;; ++attempt) {
      auto now = steady_clock::now();
      if (now >= deadline) {
        break;
      }
      if (attempt > 0 && attempt % n == 0) {
        if (only_tls_errors) {
          break;  // every endpoint refused our TLS settings: waiting will not change that
        }
        // Every endpoint failed once this round: wait a little (a leader election takes a
        // few hundred ms) instead of spinning on refused connections.
        auto left = std::chrono::duration_cast<milliseconds>(deadline - now);
        std::this_thread::sleep_for(std::min(pause, left));
        pause = std::min(pause * 2, milliseconds(400));
        if (steady_clock::now() >= deadline) {
          break;
        }
      }
      const std::size_t idx = (preferred_ + attempt) % n;
      Outcome out = attempt_once(idx, path, body, kind, deadline, &reauthenticated);
      switch (out.kind) {
        case Outcome::kOk:
          if (idx != preferred_) {
            preferred_ = idx;
            remember_endpoint(list_key_, idx);
          }
          return std::move(out.body);
        case Outcome::kFatal:
          return std::move(out.error);
        case Outcome::kUnknown:
          return Error(ErrorCode::kTryAgainLater,
                       "etcd " + cfg_.endpoints[idx].url() + ": outcome unknown: " + out.message +
                           " (the transaction may or may not have been applied)",
                       std::string(kOutcomeUnknownDetails));
        case Outcome::kRetrySame:
          --attempt;  // a renewed token: the same endpoint again, not counted as a failure
          continue;
        case Outcome::kFailover:
          // An attempt cut short by the operation deadline says less than the error before it.
          if (!(out.timed_out && steady_clock::now() >= deadline && failures[idx] > 0)) {
            last_error[idx] = out.message;
            only_tls_errors = only_tls_errors && out.tls;
          }
          ++failures[idx];
          continue;
      }
    }
    std::string msg = "etcd: no endpoint answered within " + ms_string(cfg_.operation_timeout) +
                      " (unreachable or without quorum):";
    for (std::size_t i = 0; i < n; ++i) {
      msg += " " + cfg_.endpoints[i].url() + ": " +
             (failures[i] == 0
                  ? std::string("not tried")
                  : last_error[i] + (failures[i] > 1
                                         ? " (" + std::to_string(failures[i]) + " attempts)"
                                         : std::string()));
      msg += i + 1 < n ? ";" : "";
    }
    bool tried_any = false;
    for (int f : failures) {
      tried_any = tried_any || f > 0;
    }
    return Error(
        tried_any && only_tls_errors ? ErrorCode::kInvalidNetworkConfig : ErrorCode::kTryAgainLater,
        msg);
  }

  Result<std::string> call_one(std::size_t idx, std::string_view path, const std::string& body) {
    bool reauthenticated = false;
    const auto deadline = steady_clock::now() + cfg_.call_timeout;
    for (;;) {
      Outcome out = attempt_once(idx, path, body, Kind::kIdempotent, deadline, &reauthenticated);
      switch (out.kind) {
        case Outcome::kOk:
          return std::move(out.body);
        case Outcome::kFatal:
          return std::move(out.error);
        case Outcome::kRetrySame:
          continue;
        case Outcome::kUnknown:
        case Outcome::kFailover:
          return Error(out.tls ? ErrorCode::kInvalidNetworkConfig : ErrorCode::kTryAgainLater,
                       "etcd " + cfg_.endpoints[idx].url() + ": " + out.message);
      }
    }
  }

  const Config& config() const { return cfg_; }
  std::size_t preferred() const { return preferred_; }

 private:
  struct Outcome {
    enum Kind { kOk, kFailover, kRetrySame, kUnknown, kFatal } kind = kOk;
    std::string body;
    std::string message;
    bool tls = false;
    bool timed_out = false;
    Error error{ErrorCode::kInternal, ""};

    static Outcome make(Kind k, std::string body, std::string message = {}, bool tls = false) {
      Outcome o;
      o.kind = k;
      o.body = std::move(body);
      o.message = std::move(message);
      o.tls = tls;
      return o;
    }
    static Outcome failed(Kind k, const detail::PostFailure& f, std::string_view prefix = {}) {
      Outcome o = make(k, {}, std::string(prefix) + f.message, f.tls);
      o.timed_out = f.timed_out;
      return o;
    }
  };

  Status init_tls() {
    try {
      tls_.emplace(asio::ssl::context::tls_client);
      tls_->set_verify_mode(asio::ssl::verify_peer);
      tls_->set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                        asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
      // TLS 1.2 only: under TLS 1.3 the member checks the client certificate after the
      // client's side of the handshake is done, so a rejected certificate shows up as a reset
      // of the first request — indistinguishable from a crash, which would make a Txn's outcome
      // "unknown" and hide the real cause. Under 1.2 the handshake itself fails with the alert.
      SSL_CTX_set_max_proto_version(tls_->native_handle(), TLS1_2_VERSION);
      boost::system::error_code ec;
      // The PEM files are read here, not by OpenSSL's file loaders: those report a missing or
      // unreadable file as "asio.ssl error", without the OS's reason. A CA bundle of every
      // public CA is ~200 KiB.
      constexpr std::size_t kMaxPemBytes = std::size_t{4} << 20;
      auto read_pem = [](std::string_view key, const std::string& path) -> Result<std::string> {
        auto text = read_file(AT_FDCWD, path, kMaxPemBytes, ErrorCode::kInvalidNetworkConfig,
                              FollowSymlinks::kYes);
        if (!text) {
          return std::move(text).error().with_context(key);  // "etcd_cert_file open P: reason"
        }
        return text;
      };
      // A file OpenSSL could not use (not PEM, or not what the key says): key, path, reason.
      auto unusable = [&ec](std::string_view key, const std::string& path) {
        return Error(ErrorCode::kInvalidNetworkConfig,
                     std::string(key) + " " + path + ": " + ec.message());
      };
      if (!cfg_.ca_cert_file.empty()) {
        IPOIB_TRY_ASSIGN(std::string ca, read_pem("etcd_ca_cert_file", cfg_.ca_cert_file));
        tls_->add_certificate_authority(asio::buffer(ca), ec);
        if (ec) {
          return unusable("etcd_ca_cert_file", cfg_.ca_cert_file);
        }
      } else {
        tls_->set_default_verify_paths(ec);
      }
      if (!cfg_.cert_file.empty()) {
        IPOIB_TRY_ASSIGN(std::string chain, read_pem("etcd_cert_file", cfg_.cert_file));
        tls_->use_certificate_chain(asio::buffer(chain), ec);
        if (ec) {
          return unusable("etcd_cert_file", cfg_.cert_file);
        }
        IPOIB_TRY_ASSIGN(std::string key, read_private_file(cfg_.key_file, "etcd_key_file"));
        tls_->use_private_key(asio::buffer(key), asio::ssl::context::pem, ec);
        if (ec) {
          return unusable("etcd_key_file", cfg_.key_file);
        }
      }
      return ok_status();
    } catch (const std::exception& e) {
      return Error(ErrorCode::kInternal, std::string("etcd TLS setup: ") + e.what());
    }
  }

  // Authenticates at endpoint idx when credentials are configured and no token is held.
  // Returns nullopt when the call may proceed.
  std::optional<Outcome> ensure_token(std::size_t idx, detail::Deadline deadline) {
    if (cfg_.username.empty() || !token_.empty() || auth_disabled_) {
      return std::nullopt;
    }
    detail::HttpReply reply;
    detail::PostFailure failure;
    const std::string no_token;
    if (!conns_[idx]->post(kAuthenticatePath, authenticate_json(cfg_.username, cfg_.password),
                           no_token, std::min(deadline, steady_clock::now() + cfg_.call_timeout),
                           &reply, &failure)) {
      return Outcome::failed(Outcome::kFailover, failure, "authenticate: ");
    }
    if (reply.status == 200) {
      auto token = parse_authenticate_response(reply.body);
      if (!token.ok()) {
        return fatal(idx, Error(token.error()).with_context("authenticate"));
      }
      token_ = std::move(*token);
      return std::nullopt;
    }
    auto ge = parse_gateway_error(reply.body);
    if (member_unavailable(reply.status, ge)) {
      return Outcome::make(Outcome::kFailover, {}, "authenticate: " + error_text(reply, ge));
    }
    if (ge && ge->message.find("authentication is not enabled") != std::string::npos) {
      auth_disabled_ = true;  // credentials configured but unused: proceed without a token
      return std::nullopt;
    }
    return fatal(idx, Error(ErrorCode::kInvalidNetworkConfig,
                            "authentication as etcd user \"" + cfg_.username +
                                "\" failed: " + error_text(reply, ge) +
                                " (check etcd_username and etcd_password)"));
  }

  Outcome attempt_once(std::size_t idx, std::string_view path, const std::string& body, Kind kind,
                       detail::Deadline op_deadline, bool* reauthenticated) {
    const auto deadline = std::min(op_deadline, steady_clock::now() + cfg_.call_timeout);
    if (auto stop = ensure_token(idx, deadline)) {
      return std::move(*stop);
    }
    detail::HttpReply reply;
    detail::PostFailure failure;
    if (!conns_[idx]->post(path, body, token_, deadline, &reply, &failure)) {
      if (failure.maybe_sent && kind == Kind::kNotIdempotent) {
        return Outcome::failed(Outcome::kUnknown, failure);
      }
      return Outcome::failed(Outcome::kFailover, failure);
    }
    if (reply.status == 200) {
      return Outcome::make(Outcome::kOk, std::move(reply.body));
    }
    auto ge = parse_gateway_error(reply.body);
    if (invalid_token(ge) && !cfg_.username.empty() && !*reauthenticated) {
      // Simple tokens expire (--auth-token-ttl) and die with the member that issued them.
      token_.clear();
      *reauthenticated = true;
      return Outcome::make(Outcome::kRetrySame, {});
    }
    if (member_unavailable(reply.status, ge)) {
      if (kind == Kind::kNotIdempotent && !certainly_not_applied(ge ? ge->message : "")) {
        return Outcome::make(Outcome::kUnknown, {}, error_text(reply, ge));
      }
      return Outcome::make(Outcome::kFailover, {}, error_text(reply, ge));
    }
    ErrorCode code = ErrorCode::kIoFailure;
    std::string what = "rejected the request";
    if (invalid_token(ge) || (ge && ge->code == kGrpcPermissionDenied) ||
        (ge && ge->message.find("user name is empty") != std::string::npos)) {
      code = ErrorCode::kInvalidNetworkConfig;
      what = cfg_.username.empty() ? "requires authentication (set etcd_username and etcd_password)"
                                   : "refused user \"" + cfg_.username + "\"";
    }
    return fatal(idx, Error(code, what + ": " + error_text(reply, ge)));
  }

  Outcome fatal(std::size_t idx, Error e) {
    Outcome out = Outcome::make(Outcome::kFatal, {});
    out.error = std::move(e).with_context("etcd " + cfg_.endpoints[idx].url());
    return out;
  }

  static std::string error_text(const detail::HttpReply& reply,
                                const std::optional<GatewayError>& ge) {
    if (ge) {
      return ge->message + " (gRPC code " + std::to_string(ge->code) + ")";
    }
    return "HTTP " + std::to_string(reply.status);
  }

  Config cfg_;
  std::string list_key_;
  asio::io_context ioc_{1};
  std::optional<asio::ssl::context> tls_;
  std::vector<std::unique_ptr<detail::Connection>> conns_;
  std::size_t preferred_ = 0;
  std::string token_;
  bool auth_disabled_ = false;
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::create(Config config) {
  try {
    auto impl = std::make_unique<Impl>(std::move(config));
    IPOIB_TRY(impl->init());
    return std::unique_ptr<Client>(new Client(std::move(impl)));
  } catch (const std::exception& e) {
    return Error(ErrorCode::kInternal, std::string("etcd client: ") + e.what());
  }
}

namespace {

template <class Response>
Result<Response> decode(Result<std::string> body, Result<Response> (*parse)(std::string_view)) {
  if (!body.ok()) {
    return std::move(body).error();
  }
  return parse(*body);
}

}  // namespace

Result<RangeResponse> Client::range(const RangeRequest& r) {
  return decode(impl_->call(kRangePath, to_json(r), Impl::Kind::kIdempotent),
                &parse_range_response);
}

Result<PutResponse> Client::put(const PutRequest& r) {
  return decode(impl_->call(kPutPath, to_json(r), Impl::Kind::kIdempotent), &parse_put_response);
}

Result<DeleteRangeResponse> Client::delete_range(const DeleteRangeRequest& r) {
  return decode(impl_->call(kDeleteRangePath, to_json(r), Impl::Kind::kIdempotent),
                &parse_delete_range_response);
}

Result<TxnResponse> Client::txn(const TxnRequest& r, TxnRetry retry) {
  auto kind = retry == TxnRetry::kIdempotent ? Impl::Kind::kIdempotent : Impl::Kind::kNotIdempotent;
  return decode(impl_->call(kTxnPath, to_json(r), kind), &parse_txn_response);
}

Result<std::vector<RangeResponse>> Client::read(const std::vector<RangeRequest>& reads) {
  TxnRequest t;
  t.success.assign(reads.begin(), reads.end());
  IPOIB_TRY_ASSIGN(TxnResponse resp, txn(t, TxnRetry::kIdempotent));
  if (!resp.succeeded || resp.responses.size() != reads.size()) {
    return Error(ErrorCode::kDecodeFailure,
                 "etcd response: a Txn of " + std::to_string(reads.size()) + " reads returned " +
                     std::to_string(resp.responses.size()) + " responses" +
                     (resp.succeeded ? "" : " and did not succeed"));
  }
  std::vector<RangeResponse> out;
  out.reserve(reads.size());
  for (ResponseOp& op : resp.responses) {
    auto* range = std::get_if<RangeResponse>(&op);
    if (range == nullptr) {
      return Error(ErrorCode::kDecodeFailure, "etcd response: a read Txn returned a write");
    }
    range->header = resp.header;
    out.push_back(std::move(*range));
  }
  return out;
}

Result<std::int64_t> Client::lease_grant(std::int64_t ttl_seconds) {
  return decode(
      impl_->call(kLeaseGrantPath, lease_grant_json(ttl_seconds), Impl::Kind::kIdempotent),
      &parse_lease_grant_response);
}

Result<StatusResponse> Client::status() {
  return decode(impl_->call(kStatusPath, "{}", Impl::Kind::kIdempotent), &parse_status_response);
}

Result<StatusResponse> Client::status_of(std::size_t endpoint_index) {
  if (endpoint_index >= impl_->config().endpoints.size()) {
    return Error(ErrorCode::kInternal,
                 "etcd status_of: no endpoint " + std::to_string(endpoint_index));
  }
  return decode(impl_->call_one(endpoint_index, kStatusPath, "{}"), &parse_status_response);
}

const std::vector<Endpoint>& Client::endpoints() const { return impl_->config().endpoints; }

std::size_t Client::preferred_endpoint() const { return impl_->preferred(); }

}  // namespace ipoib::etcd
