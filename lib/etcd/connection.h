// lib/etcd/connection.h — internal: one kept-alive HTTP/1.1 connection to one etcd endpoint,
// plain or TLS, every step bounded by a deadline. Used only by client.cpp.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "ipoib/etcd/client.h"

namespace ipoib::etcd::detail {

using Deadline = std::chrono::steady_clock::time_point;

struct HttpReply {
  unsigned status = 0;
  std::string body;
};

// Why a POST got no HTTP reply.
struct PostFailure {
  std::string message;  // "connect: Connection refused", "read: timed out"
  // The request may have reached the server (it was written, or being written, on an
  // established connection): a write in it may have been applied.
  bool maybe_sent = false;
  // The TLS handshake failed or the peer rejected the session: a configuration problem rather
  // than an outage (the member cannot have processed anything).
  bool tls = false;
  bool timed_out = false;  // the deadline passed
};

class Connection {
 public:
  // tls is the client's TLS context when the endpoint is https; it must outlive the connection.
  Connection(boost::asio::io_context& ioc, boost::asio::ssl::context* tls, Endpoint ep);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // POSTs body (JSON) to path, reusing the open connection when the server has not closed it.
  // Returns false with *failure filled when no complete reply arrived by the deadline; the
  // connection is then closed.
  bool post(std::string_view path, const std::string& body, const std::string& token,
            Deadline deadline, HttpReply* reply, PostFailure* failure);

  void close();

 private:
  bool usable() const;
  bool connect(Deadline deadline, PostFailure* failure);
  boost::beast::tcp_stream& lowest();

  boost::asio::io_context& ioc_;
  boost::asio::ssl::context* tls_;
  Endpoint ep_;
  std::optional<boost::beast::tcp_stream> tcp_;
  std::optional<boost::beast::ssl_stream<boost::beast::tcp_stream>> ssl_;
  boost::beast::flat_buffer buffer_;
};

}  // namespace ipoib::etcd::detail
