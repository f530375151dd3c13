// etcd v3 gateway JSON: builders and parsers (see ipoib/etcd/wire.h).
#include "ipoib/etcd/wire.h"

#include <array>
#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>

namespace ipoib::etcd {
namespace {

using nlohmann::json;

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

Error decode_error(std::string_view what) {
  return {ErrorCode::kDecodeFailure, "etcd response: " + std::string(what)};
}

// Parser helpers: every accessor checks the JSON type, so no nlohmann exception is possible
// once the document parsed (parse itself is called with exceptions disabled).
const json* member(const json& obj, const char* name) {
  auto it = obj.find(name);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

// 64-bit integers arrive as decimal strings; plain JSON numbers are accepted too.
template <class Int>
Result<Int> get_int(const json& obj, const char* name) {
  const json* v = member(obj, name);
  if (v == nullptr) {
    return Int{0};
  }
  if (v->is_number_integer()) {
    if (v->is_number_unsigned()) {
      auto u = v->get<std::uint64_t>();
      if (u <= static_cast<std::uint64_t>(std::numeric_limits<Int>::max())) {
        return static_cast<Int>(u);
      }
    } else {
      auto s = v->get<std::int64_t>();
      if (std::is_signed_v<Int> || s >= 0) {
        return static_cast<Int>(s);
      }
    }
    return decode_error(std::string(name) + ": out of range");
  }
  if (v->is_string()) {
    const auto& s = v->get_ref<const std::string&>();
    Int out{};
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec == std::errc() && end == s.data() + s.size() && !s.empty()) {
      return out;
    }
  }
  return decode_error(std::string(name) + ": not an integer");
}

Result<bool> get_bool(const json& obj, const char* name) {
  const json* v = member(obj, name);
  if (v == nullptr) {
    return false;
  }
  if (!v->is_boolean()) {
    return decode_error(std::string(name) + ": not a boolean");
  }
  return v->get<bool>();
}

Result<std::string> get_bytes(const json& obj, const char* name) {
  const json* v = member(obj, name);
  if (v == nullptr) {
    return std::string();
  }
  if (!v->is_string()) {
    return decode_error(std::string(name) + ": not a base64 string");
  }
  auto r = base64_decode(v->get_ref<const std::string&>());
  if (!r.ok()) {
    return decode_error(std::string(name) + ": not base64");
  }
  return r;
}

Result<std::string> get_string(const json& obj, const char* name) {
  const json* v = member(obj, name);
  if (v == nullptr) {
    return std::string();
  }
  if (!v->is_string()) {
    return decode_error(std::string(name) + ": not a string");
  }
  return v->get<std::string>();
}

Result<json> parse_object(std::string_view body) {
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return decode_error("not a JSON object");
  }
  return doc;
}

// An optional nested object: absent is an empty object, anything else not an object an error.
Result<const json*> get_object(const json& obj, const char* name) {
  static const json kEmpty = json::object();
  const json* v = member(obj, name);
  if (v == nullptr) {
    return &kEmpty;
  }
  if (!v->is_object()) {
    return decode_error(std::string(name) + ": not an object");
  }
  return v;
}

Result<ResponseHeader> parse_header(const json& obj) {
  IPOIB_TRY_ASSIGN(const json* h, get_object(obj, "header"));
  ResponseHeader out;
  IPOIB_TRY_ASSIGN(out.cluster_id, get_int<std::uint64_t>(*h, "cluster_id"));
  IPOIB_TRY_ASSIGN(out.member_id, get_int<std::uint64_t>(*h, "member_id"));
  IPOIB_TRY_ASSIGN(out.revision, get_int<std::int64_t>(*h, "revision"));
  IPOIB_TRY_ASSIGN(out.raft_term, get_int<std::uint64_t>(*h, "raft_term"));
  return out;
}

Result<KeyValue> parse_kv(const json& v) {
  if (!v.is_object()) {
    return decode_error("kv: not an object");
  }
  KeyValue kv;
  IPOIB_TRY_ASSIGN(kv.key, get_bytes(v, "key"));
  IPOIB_TRY_ASSIGN(kv.value, get_bytes(v, "value"));
  IPOIB_TRY_ASSIGN(kv.create_revision, get_int<std::int64_t>(v, "create_revision"));
  IPOIB_TRY_ASSIGN(kv.mod_revision, get_int<std::int64_t>(v, "mod_revision"));
  IPOIB_TRY_ASSIGN(kv.version, get_int<std::int64_t>(v, "version"));
  IPOIB_TRY_ASSIGN(kv.lease, get_int<std::int64_t>(v, "lease"));
  return kv;
}

Result<std::vector<KeyValue>> parse_kvs(const json& obj, const char* name) {
  std::vector<KeyValue> out;
  const json* v = member(obj, name);
  if (v == nullptr) {
    return out;
  }
  if (!v->is_array()) {
    return decode_error(std::string(name) + ": not an array");
  }
  out.reserve(v->size());
  for (const json& item : *v) {
    IPOIB_TRY_ASSIGN(KeyValue kv, parse_kv(item));
    out.push_back(std::move(kv));
  }
  return out;
}

Result<RangeResponse> range_from(const json& doc) {
  RangeResponse r;
  IPOIB_TRY_ASSIGN(r.header, parse_header(doc));
  IPOIB_TRY_ASSIGN(r.kvs, parse_kvs(doc, "kvs"));
  IPOIB_TRY_ASSIGN(r.count, get_int<std::int64_t>(doc, "count"));
  IPOIB_TRY_ASSIGN(r.more, get_bool(doc, "more"));
  return r;
}

Result<PutResponse> put_from(const json& doc) {
  PutResponse r;
  IPOIB_TRY_ASSIGN(r.header, parse_header(doc));
  if (const json* prev = member(doc, "prev_kv"); prev != nullptr) {
    IPOIB_TRY_ASSIGN(r.prev_kv, parse_kv(*prev));
  }
  return r;
}

Result<DeleteRangeResponse> delete_from(const json& doc) {
  DeleteRangeResponse r;
  IPOIB_TRY_ASSIGN(r.header, parse_header(doc));
  IPOIB_TRY_ASSIGN(r.deleted, get_int<std::int64_t>(doc, "deleted"));
  IPOIB_TRY_ASSIGN(r.prev_kvs, parse_kvs(doc, "prev_kvs"));
  return r;
}

json range_json(const RangeRequest& r) {
  json j = {{"key", base64_encode(r.key)}};
  if (!r.range_end.empty()) {
    j["range_end"] = base64_encode(r.range_end);
  }
  if (r.limit != 0) {
    j["limit"] = std::to_string(r.limit);
  }
  if (r.revision != 0) {
    j["revision"] = std::to_string(r.revision);
  }
  if (r.keys_only) {
    j["keys_only"] = true;
  }
  if (r.count_only) {
    j["count_only"] = true;
  }
  return j;
}

json put_json(const PutRequest& r) {
  json j = {{"key", base64_encode(r.key)}, {"value", base64_encode(r.value)}};
  if (r.lease != 0) {
    j["lease"] = std::to_string(r.lease);
  }
  if (r.prev_kv) {
    j["prev_kv"] = true;
  }
  return j;
}

json delete_json(const DeleteRangeRequest& r) {
  json j = {{"key", base64_encode(r.key)}};
  if (!r.range_end.empty()) {
    j["range_end"] = base64_encode(r.range_end);
  }
  if (r.prev_kv) {
    j["prev_kv"] = true;
  }
  return j;
}

json op_json(const RequestOp& op) {
  struct Visitor {
    json operator()(const RangeRequest& r) const { return {{"request_range", range_json(r)}}; }
    json operator()(const PutRequest& r) const { return {{"request_put", put_json(r)}}; }
    json operator()(const DeleteRangeRequest& r) const {
      return {{"request_delete_range", delete_json(r)}};
    }
  };
  return std::visit(Visitor{}, op);
}

json ops_json(const std::vector<RequestOp>& ops) {
  json a = json::array();
  for (const auto& op : ops) {
    a.push_back(op_json(op));
  }
  return a;
}

const char* target_name(CompareTarget t) {
  switch (t) {
    case CompareTarget::kCreate:
      return "CREATE";
    case CompareTarget::kMod:
      return "MOD";
    case CompareTarget::kVersion:
      return "VERSION";
    case CompareTarget::kValue:
      return "VALUE";
  }
  return "CREATE";
}

const char* result_name(CompareResult r) {
  switch (r) {
    case CompareResult::kEqual:
      return "EQUAL";
    case CompareResult::kGreater:
      return "GREATER";
    case CompareResult::kLess:
      return "LESS";
    case CompareResult::kNotEqual:
      return "NOT_EQUAL";
  }
  return "EQUAL";
}

json compare_json(const Compare& c) {
  json j = {{"key", base64_encode(c.key)},
            {"target", target_name(c.target)},
            {"result", result_name(c.result)}};
  if (!c.range_end.empty()) {
    j["range_end"] = base64_encode(c.range_end);
  }
  switch (c.target) {
    case CompareTarget::kCreate:
      j["create_revision"] = std::to_string(c.number);
      break;
    case CompareTarget::kMod:
      j["mod_revision"] = std::to_string(c.number);
      break;
    case CompareTarget::kVersion:
      j["version"] = std::to_string(c.number);
      break;
    case CompareTarget::kValue:
      j["value"] = base64_encode(c.value);
      break;
  }
  return j;
}

// Serialises with invalid UTF-8 replaced: every string we emit is base64 or ASCII already,
// except user names and passwords, which must not make dump() throw.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    auto n = (std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16) |
             (std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8) |
             std::uint32_t{static_cast<unsigned char>(bytes[i + 2])};
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (std::size_t rest = bytes.size() - i; rest > 0) {
    std::uint32_t n = std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16;
    if (rest == 2) {
      n |= std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8;
    }
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += rest == 2 ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  static const auto kTable = [] {
    std::array<std::int8_t, 256> t{};
    t.fill(-1);
    for (std::size_t i = 0; i < kAlphabet.size(); ++i) {
      t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
    }
    return t;
  }();
  if (text.size() % 4 != 0) {
    return Error(ErrorCode::kDecodeFailure, "base64: length is not a multiple of 4");
  }
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    int pad = 0;
    std::uint32_t n = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      char c = text[i + k];
      if (c == '=' && last && k >= 2 && (k == 3 || text[i + 3] == '=')) {
        ++pad;
        n <<= 6;
        continue;
      }
      std::int8_t v = kTable[static_cast<unsigned char>(c)];
      if (v < 0 || pad > 0) {
        return Error(ErrorCode::kDecodeFailure, "base64: invalid character");
      }
      n = (n << 6) | static_cast<std::uint32_t>(v);
    }
    out += static_cast<char>((n >> 16) & 0xff);
    if (pad < 2) {
      out += static_cast<char>((n >> 8) & 0xff);
    }
    if (pad < 1) {
      out += static_cast<char>(n & 0xff);
    }
  }
  return out;
}

std::string prefix_range_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

namespace {

// A request over one key or over every key under a prefix (range and delete share the shape).
template <class Request>
Request one_key(std::string&& key) {
  Request r;
  r.key = std::move(key);
  return r;
}

template <class Request>
Request under_prefix(std::string_view prefix) {
  Request r;
  r.key = prefix.empty() ? std::string(1, '\0') : std::string(prefix);
  r.range_end = prefix_range_end(prefix);
  return r;
}

}  // namespace

RangeRequest RangeRequest::single(std::string key) { return one_key<RangeRequest>(std::move(key)); }
RangeRequest RangeRequest::prefix(std::string_view prefix) {
  return under_prefix<RangeRequest>(prefix);
}
DeleteRangeRequest DeleteRangeRequest::single(std::string key) {
  return one_key<DeleteRangeRequest>(std::move(key));
}
DeleteRangeRequest DeleteRangeRequest::prefix(std::string_view prefix) {
  return under_prefix<DeleteRangeRequest>(prefix);
}

Compare Compare::absent(std::string key) {
  Compare c;
  c.key = std::move(key);
  c.target = CompareTarget::kCreate;
  c.number = 0;
  return c;
}

Compare Compare::mod_revision_is(std::string key, std::int64_t mod_revision) {
  Compare c;
  c.key = std::move(key);
  c.target = CompareTarget::kMod;
  c.number = mod_revision;
  return c;
}

Compare Compare::value_is(std::string key, std::string value) {
  Compare c;
  c.key = std::move(key);
  c.target = CompareTarget::kValue;
  c.value = std::move(value);
  return c;
}

Compare Compare::range_unchanged_since(std::string key, std::string range_end,
                                       std::int64_t revision) {
  Compare c;
  c.key = std::move(key);
  c.range_end = std::move(range_end);
  c.target = CompareTarget::kMod;
  c.result = CompareResult::kLess;
  c.number = revision + 1;
  return c;
}

std::string to_json(const RangeRequest& r) { return dump(range_json(r)); }
std::string to_json(const PutRequest& r) { return dump(put_json(r)); }
std::string to_json(const DeleteRangeRequest& r) { return dump(delete_json(r)); }

std::string to_json(const TxnRequest& r) {
  json compares = json::array();
  for (const auto& c : r.compare) {
    compares.push_back(compare_json(c));
  }
  return dump(
      {{"compare", compares}, {"success", ops_json(r.success)}, {"failure", ops_json(r.failure)}});
}

std::string authenticate_json(std::string_view name, std::string_view password) {
  return dump({{"name", name}, {"password", password}});
}

Result<RangeResponse> parse_range_response(std::string_view body) {
  IPOIB_TRY_ASSIGN(json doc, parse_object(body));
  return range_from(doc);
}

Result<PutResponse> parse_put_response(std::string_view body) {
  IPOIB_TRY_ASSIGN(json doc, parse_object(body));
  return put_from(doc);
}

Result<DeleteRangeResponse> parse_delete_range_response(std::string_view body) {
  IPOIB_TRY_ASSIGN(json doc, parse_object(body));
  return delete_from(doc);
}

Result<TxnResponse> parse_txn_response(std::string_view body) {
  IPOIB_TRY_ASSIGN(json doc, parse_object(body));
  TxnResponse r;
  IPOIB_TRY_ASSIGN(r.header, parse_header(doc));
  IPOIB_TRY_ASSIGN(r.succeeded, get_bool(doc, "succeeded"));
  const json* ops = member(doc, "responses");
  if (ops == nullptr) {
    return r;
  }
  if (!ops->is_array()) {
    return decode_error("responses: not an array");
  }
  for (const json& op : *ops) {
    if (!op.is_object() || op.size() != 1) {
      return decode_error("responses: each item must hold exactly one response");
    }
    const std::string& name = op.begin().key();
    const json& inner = op.begin().value();
    if (!inner.is_object()) {
      return decode_error("responses: " + name + ": not an object");
    }
    if (name == "response_range") {
      IPOIB_TRY_ASSIGN(RangeResponse x, range_from(inner));
      r.responses.emplace_back(std::move(x));
    } else if (name == "response_put") {
      IPOIB_TRY_ASSIGN(PutResponse x, put_from(inner));
      r.responses.emplace_back(std::move(x));
    } else if (name == "response_delete_range") {
      IPOIB_TRY_ASSIGN(DeleteRangeResponse x, delete_from(inner));
      r.responses.emplace_back(std::move(x));
    } else {
      return decode_error("responses: unknown response kind");
    }
  }
  return r;
}

Result<std::string> parse_authenticate_response(std::string_view body) {
  IPOIB_TRY_ASSIGN(json doc, parse_object(body));
  IPOIB_TRY_ASSIGN(std::string token, get_string(doc, "token"));
  if (token.empty()) {
    return decode_error("authenticate: no token");
  }
  return token;
}

Result<StatusResponse> parse_status_response(std::string_view body) {
  IPOIB_TRY_ASSIGN(json doc, parse_object(body));
  StatusResponse r;
  IPOIB_TRY_ASSIGN(r.header, parse_header(doc));
  IPOIB_TRY_ASSIGN(r.version, get_string(doc, "version"));
  IPOIB_TRY_ASSIGN(r.leader, get_int<std::uint64_t>(doc, "leader"));
  // The 3.4 gateway writes these in camelCase (dbSize, raftIndex); accept both spellings.
  const bool camel = member(doc, "raftIndex") != nullptr || member(doc, "raftTerm") != nullptr;
  IPOIB_TRY_ASSIGN(r.raft_index, get_int<std::uint64_t>(doc, camel ? "raftIndex" : "raft_index"));
  IPOIB_TRY_ASSIGN(r.raft_term, get_int<std::uint64_t>(doc, camel ? "raftTerm" : "raft_term"));
  IPOIB_TRY_ASSIGN(r.db_size, get_int<std::int64_t>(doc, camel ? "dbSize" : "db_size"));
  return r;
}

std::optional<GatewayError> parse_gateway_error(std::string_view body) {
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return std::nullopt;
  }
  auto code = get_int<std::int32_t>(doc, "code");
  if (!code.ok()) {
    return std::nullopt;
  }
  auto message = get_string(doc, "message");
  if (!message.ok() || message->empty()) {
    message = get_string(doc, "error");
  }
  if (!message.ok()) {
    return std::nullopt;
  }
  return GatewayError{*code, std::move(*message)};
}

}  // namespace ipoib::etcd
