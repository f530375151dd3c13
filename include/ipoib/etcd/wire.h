// ipoib/etcd/wire.h — etcd v3 JSON-gateway messages as typed C++ values: request bodies built
// and response bodies parsed without any I/O (the transport is client.h).
//
// On the wire (etcd 3.4 grpc-gateway, proto field names): keys and values are base64, 64-bit
// integers are JSON strings, fields equal to their zero value are omitted ("succeeded" is absent
// when a Txn's compares failed). These functions hide all of that:
//
//   TxnRequest t;
//   t.compare.push_back(Compare::absent("/ipoib/v1/a"));          // create_revision == 0
//   t.success.push_back(PutRequest{"/ipoib/v1/a", "owner"});
//   t.failure.push_back(RangeRequest::single("/ipoib/v1/a"));
//   std::string body = to_json(t);                               // POST /v3/kv/txn
//   IPOIB_TRY_ASSIGN(TxnResponse r, parse_txn_response(reply));  // r.succeeded, r.responses
//
// Parsers accept exactly what the gateway sends and reject anything else with kDecodeFailure
// naming the field; they never throw (tests/fuzz/fuzz_etcd_response.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ipoib/base/error.h"

namespace ipoib::etcd {

// Gateway paths.
inline constexpr std::string_view kRangePath = "/v3/kv/range";
inline constexpr std::string_view kPutPath = "/v3/kv/put";
inline constexpr std::string_view kDeleteRangePath = "/v3/kv/deleterange";
inline constexpr std::string_view kTxnPath = "/v3/kv/txn";
inline constexpr std::string_view kAuthenticatePath = "/v3/auth/authenticate";
inline constexpr std::string_view kStatusPath = "/v3/maintenance/status";

// RFC 4648 base64 with padding (what Go's encoding/json uses for []byte).
std::string base64_encode(std::string_view bytes);
// Accepts padded input only; any other character or a bad length is kDecodeFailure.
Result<std::string> base64_decode(std::string_view text);

// The range_end that makes [prefix, end) cover every key starting with prefix: prefix with its
// last byte below 0xff incremented and the rest dropped. An empty prefix or one of only 0xff
// bytes gives "\0", which etcd reads as "to the end of the keyspace".
std::string prefix_range_end(std::string_view prefix);

struct KeyValue {
  std::string key;
  std::string value;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t version = 0;
  std::int64_t lease = 0;
  bool operator==(const KeyValue&) const = default;
};

struct ResponseHeader {
  std::uint64_t cluster_id = 0;
  std::uint64_t member_id = 0;
  std::int64_t revision = 0;
  std::uint64_t raft_term = 0;
};

// A key (range_end empty), a range [key, range_end), or with RangeRequest::prefix every key
// under a prefix. limit 0 means no limit; revision 0 means the latest.
struct RangeRequest {
  std::string key;
  std::string range_end;
  std::int64_t limit = 0;
  bool keys_only = false;
  bool count_only = false;
  std::int64_t revision = 0;

  static RangeRequest single(std::string key);
  static RangeRequest prefix(std::string_view prefix);
};

struct RangeResponse {
  ResponseHeader header;
  std::vector<KeyValue> kvs;
  std::int64_t count = 0;  // keys in the range (not only those returned under limit)
  bool more = false;       // the limit cut the reply short
};

struct PutRequest {
  std::string key;
  std::string value;
  std::int64_t lease = 0;
  bool prev_kv = false;
};

struct PutResponse {
  ResponseHeader header;
  std::optional<KeyValue> prev_kv;
};

struct DeleteRangeRequest {
  std::string key;
  std::string range_end;
  bool prev_kv = false;

  static DeleteRangeRequest single(std::string key);
  static DeleteRangeRequest prefix(std::string_view prefix);
};

struct DeleteRangeResponse {
  ResponseHeader header;
  std::int64_t deleted = 0;
  std::vector<KeyValue> prev_kvs;
};

enum class CompareTarget { kCreate, kMod, kVersion, kValue };
enum class CompareResult { kEqual, kGreater, kLess, kNotEqual };

// One Txn guard: `target(key) result operand`. The operand is `number` for kCreate (the
// create_revision), kMod (mod_revision) and kVersion, `value` for kValue.
struct Compare {
  std::string key;
  CompareTarget target = CompareTarget::kCreate;
  CompareResult result = CompareResult::kEqual;
  std::int64_t number = 0;
  std::string value;
  std::string range_end = {};  // set: the compare holds for every key in [key, range_end)

  // The key does not exist (create_revision == 0): create-if-absent.
  static Compare absent(std::string key);
  // The key exists and was last written at mod_revision (compare-and-swap).
  static Compare mod_revision_is(std::string key, std::int64_t mod_revision);
  static Compare value_is(std::string key, std::string value);
  // No key in [key, range_end) was written after `revision` (mod_revision < revision + 1): the
  // guard of a range read at that revision. A key deleted since is not seen by it.
  static Compare range_unchanged_since(std::string key, std::string range_end,
                                       std::int64_t revision);
};

using RequestOp = std::variant<RangeRequest, PutRequest, DeleteRangeRequest>;
using ResponseOp = std::variant<RangeResponse, PutResponse, DeleteRangeResponse>;

struct TxnRequest {
  std::vector<Compare> compare;
  std::vector<RequestOp> success;  // applied when every compare holds
  std::vector<RequestOp> failure;  // applied otherwise
};

struct TxnResponse {
  ResponseHeader header;
  bool succeeded = false;
  std::vector<ResponseOp> responses;  // one per op of the branch that ran, in order
};

struct StatusResponse {
  ResponseHeader header;  // header.member_id is the member that answered
  std::string version;
  std::uint64_t leader = 0;  // member id of the leader as this member sees it; 0 if none
  std::uint64_t raft_index = 0;
  std::uint64_t raft_term = 0;
  std::int64_t db_size = 0;
  [[nodiscard]] bool is_leader() const { return leader != 0 && leader == header.member_id; }
};

// The body of a non-200 reply: {"error","message","code"} with a gRPC status code.
struct GatewayError {
  int code = 0;  // gRPC code: 14 unavailable, 4 deadline exceeded, 16 unauthenticated, ...
  std::string message;
};

// gRPC status codes the client acts on.
inline constexpr int kGrpcInvalidArgument = 3;
inline constexpr int kGrpcDeadlineExceeded = 4;
inline constexpr int kGrpcPermissionDenied = 7;
inline constexpr int kGrpcFailedPrecondition = 9;
inline constexpr int kGrpcUnavailable = 14;
inline constexpr int kGrpcUnauthenticated = 16;

// Request bodies.
std::string to_json(const RangeRequest& r);
std::string to_json(const PutRequest& r);
std::string to_json(const DeleteRangeRequest& r);
std::string to_json(const TxnRequest& r);
std::string authenticate_json(std::string_view name, std::string_view password);

// Response bodies (HTTP 200).
Result<RangeResponse> parse_range_response(std::string_view body);
Result<PutResponse> parse_put_response(std::string_view body);
Result<DeleteRangeResponse> parse_delete_range_response(std::string_view body);
Result<TxnResponse> parse_txn_response(std::string_view body);
Result<std::string> parse_authenticate_response(std::string_view body);  // the token
Result<StatusResponse> parse_status_response(std::string_view body);
// An error body; nullopt when the body is not one (a proxy's HTML page, say).
std::optional<GatewayError> parse_gateway_error(std::string_view body);

}  // namespace ipoib::etcd
