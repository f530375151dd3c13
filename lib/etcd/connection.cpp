// One kept-alive connection to an etcd endpoint (lib/etcd/connection.h).
//
// Every operation is asynchronous on the client's io_context and run to completion before
// returning, so beast::tcp_stream's expiry bounds connect, the TLS handshake (its reads and
// writes go through the tcp_stream), the write and the read alike.
#include "lib/etcd/connection.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl.hpp>
#include <exception>

#if defined(IPOIB_DEFER_OPENSSL_CPUID)
// OpenSSL's x86_64cpuid.o calls OPENSSL_cpuid_setup from the ELF .init section, so a process that
// links libcrypto statically runs OpenSSL's CPUID probe at start-up. Under a hypervisor each CPUID
// instruction is a VM exit (4–9 µs each measured on this project's machines; ~50 µs for the probe),
// paid by every CNI call — DEL, CHECK, a node-local ADD — although only a TLS connection to etcd
// uses the result. The static link wraps the symbol (lib/etcd/CMakeLists.txt: -Wl,--wrap), so
// both of OpenSSL's calls arrive here: the one from .init, which runs before any constructor, is
// skipped; the one from OPENSSL_init_crypto (ossl_init_base), which creating a TLS context makes
// first, probes for real. Until then OPENSSL_ia32cap_P is zero: OpenSSL's documented "no
// extensions" setting (OPENSSL_ia32cap(3)), correct everywhere, and unused by this program.
namespace {
bool g_constructors_ran = false;
__attribute__((constructor)) void note_constructors_ran() { g_constructors_ran = true; }
}  // namespace
extern "C" void __real_OPENSSL_cpuid_setup();   // NOLINT(bugprone-reserved-identifier)
extern "C" void __wrap_OPENSSL_cpuid_setup() {  // NOLINT(bugprone-reserved-identifier)
  if (g_constructors_ran) {
    __real_OPENSSL_cpuid_setup();
  }
}
#endif

namespace ipoib::etcd::detail {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;

constexpr std::uint64_t kMaxBodyBytes = 64ULL << 20;  // a range reply is bounded by its limit
constexpr std::uint32_t kMaxHeaderBytes = 64 << 10;

// Starts an operation and runs the io_context until its handler ran.
template <class Start>
error_code run_op(asio::io_context& ioc, Start&& start) {
  error_code result = asio::error::would_block;
  start([&result](error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run();
  return result;
}

PostFailure failure_of(std::string message, const error_code& ec, bool maybe_sent, bool tls) {
  PostFailure f;
  f.message = std::move(message);
  f.maybe_sent = maybe_sent;
  f.tls = tls;
  f.timed_out = ec == beast::error::timeout;
  return f;
}

std::string describe(const error_code& ec) {
  if (ec == beast::error::timeout) {
    return "timed out";
  }
  return ec.message();
}

bool is_tls_error(const error_code& ec) {
  return ec.category() == asio::error::get_ssl_category() &&
         ec != asio::ssl::error::stream_truncated;
}

}  // namespace

Connection::Connection(asio::io_context& ioc, asio::ssl::context* tls, Endpoint ep)
    : ioc_(ioc), tls_(tls), ep_(std::move(ep)) {}

Connection::~Connection() { close(); }

beast::tcp_stream& Connection::lowest() { return ssl_ ? beast::get_lowest_layer(*ssl_) : *tcp_; }

void Connection::close() {
  if (tcp_ || ssl_) {
    error_code ignored;
    lowest().socket().close(ignored);
  }
  ssl_.reset();
  tcp_.reset();
  buffer_.clear();
}

// A kept-alive connection is reused only if the server has not closed it meanwhile (EOF or
// unexpected bytes waiting): writing a request into a half-closed socket would make a Txn's
// outcome look unknown when the server never saw it.
bool Connection::usable() const {
  const auto& stream = ssl_ ? beast::get_lowest_layer(*ssl_) : *tcp_;
  if (!stream.socket().is_open() || buffer_.size() != 0) {
    return false;
  }
  char c;
  ssize_t n = ::recv(const_cast<beast::tcp_stream&>(stream).socket().native_handle(), &c, 1,
                     MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

bool Connection::connect(Deadline deadline, PostFailure* failure) {
  close();
  error_code ec;
  tcp::resolver::results_type addrs;
  asio::ip::address numeric = asio::ip::make_address(ep_.host, ec);
  if (!ec) {
    addrs = tcp::resolver::results_type::create(tcp::endpoint(numeric, ep_.port), ep_.host,
                                                std::to_string(ep_.port));
  } else {
    // getaddrinfo: /etc/hosts and numeric names need no resolver; a DNS lookup is not bounded
    // by the deadline (use addresses or /etc/hosts names for bounded failover).
    tcp::resolver resolver(ioc_);
    addrs = resolver.resolve(ep_.host, std::to_string(ep_.port), ec);
    if (ec) {
      *failure = failure_of("resolve " + ep_.host + ": " + ec.message(), ec, false, false);
      return false;
    }
  }
  if (ep_.tls) {
    ssl_.emplace(ioc_, *tls_);
  } else {
    tcp_.emplace(ioc_);
  }
  lowest().expires_at(deadline);
  ec = run_op(ioc_, [&](auto handler) { lowest().async_connect(addrs, std::move(handler)); });
  if (ec) {
    *failure = failure_of("connect: " + describe(ec), ec, false, false);
    close();
    return false;
  }
  error_code nodelay_ec;
  lowest().socket().set_option(tcp::no_delay(true), nodelay_ec);
  if (!ep_.tls) {
    return true;
  }
  SSL* ssl = ssl_->native_handle();
  numeric = asio::ip::make_address(ep_.host, ec);
  if (ec) {
    // SNI and the name check for a host name; an address is checked against IP SANs.
    SSL_set_tlsext_host_name(ssl, ep_.host.c_str());
    SSL_set1_host(ssl, ep_.host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ep_.host.c_str());
  }
  ec = run_op(ioc_, [&](auto handler) {
    ssl_->async_handshake(asio::ssl::stream_base::client, std::move(handler));
  });
  if (ec) {
    std::string why = describe(ec);
    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      why += ": " + std::string(X509_verify_cert_error_string(verify)) +
             " (check etcd_ca_cert_file and the member's certificate)";
    }
    *failure = failure_of("TLS handshake: " + why, ec, false, ec != beast::error::timeout);
    close();
    return false;
  }
  return true;
}

bool Connection::post(std::string_view path, const std::string& body, const std::string& token,
                      Deadline deadline, HttpReply* reply, PostFailure* failure) {
  try {
    if (!(tcp_ || ssl_) || !usable()) {
      if (!connect(deadline, failure)) {
        return false;
      }
    }
    http::request<http::string_body> req{http::verb::post, std::string(path), 11};
    req.set(http::field::host, ep_.host);
    req.set(http::field::content_type, "application/json");
    if (!token.empty()) {
      req.set(http::field::authorization, token);
    }
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();

    lowest().expires_at(deadline);
    error_code ec = run_op(ioc_, [&](auto handler) {
      if (ssl_) {
        http::async_write(*ssl_, req, std::move(handler));
      } else {
        http::async_write(*tcp_, req, std::move(handler));
      }
    });
    if (ec) {
      *failure = failure_of("write: " + describe(ec), ec, !is_tls_error(ec), is_tls_error(ec));
      close();
      return false;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxBodyBytes);
    parser.header_limit(kMaxHeaderBytes);
    ec = run_op(ioc_, [&](auto handler) {
      if (ssl_) {
        http::async_read(*ssl_, buffer_, parser, std::move(handler));
      } else {
        http::async_read(*tcp_, buffer_, parser, std::move(handler));
      }
    });
    if (ec) {
      // A TLS alert instead of a reply means the member refused the session (TLS 1.3 checks
      // the client certificate after the client's handshake finished): nothing was processed.
      *failure = failure_of("read: " + describe(ec), ec, !is_tls_error(ec), is_tls_error(ec));
      close();
      return false;
    }
    auto& res = parser.get();
    reply->status = res.result_int();
    reply->body = std::move(res.body());
    if (!res.keep_alive()) {
      close();
    }
    return true;
  } catch (const std::exception& e) {
    *failure = failure_of(std::string("transport: ") + e.what(), {}, true, false);
    close();
    return false;
  }
}

}  // namespace ipoib::etcd::detail
