// Fuzzes the etcd gateway response parsers (ipoib/etcd/wire.h): any bytes give a value or a
// kDecodeFailure, never an exception or a crash; a parsed range reply's keys and values survive
// the base64 round trip the builders use.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ipoib/etcd/wire.h"

namespace {

template <class R>
void expect_value_or_decode_error(const ipoib::Result<R>& r) {
  if (!r.ok() && r.error().code() != ipoib::ErrorCode::kDecodeFailure) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ipoib::etcd;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto range = parse_range_response(body);
  expect_value_or_decode_error(range);
  if (range.ok()) {
    for (const auto& kv : range->kvs) {
      auto back = base64_decode(base64_encode(kv.key));
      if (!back.ok() || *back != kv.key) std::abort();
    }
  }
  expect_value_or_decode_error(parse_put_response(body));
  expect_value_or_decode_error(parse_delete_range_response(body));
  auto txn = parse_txn_response(body);
  expect_value_or_decode_error(txn);
  if (txn.ok() && txn->responses.size() > size) std::abort();
  expect_value_or_decode_error(parse_authenticate_response(body));
  expect_value_or_decode_error(parse_status_response(body));
  (void)parse_gateway_error(body);
  auto decoded = base64_decode(body);
  if (decoded.ok() && base64_encode(*decoded) != body) std::abort();
  return 0;
}
