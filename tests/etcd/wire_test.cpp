// The pure layer of the etcd client (no server): base64, request bodies, response parsing,
// endpoint lists, the secret-file mode rule.
#include "ipoib/etcd/wire.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ipoib/etcd/client.h"
#include "tests/etcd/etcd_cluster.h"

using namespace ipoib::etcd;
using nlohmann::json;

TEST_CASE("base64 matches RFC 4648 section 10 and round-trips every byte") {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (auto [plain, coded] : vectors) {
    CHECK(base64_encode(plain) == coded);
    auto back = base64_decode(coded);
    REQUIRE(back.ok());
    CHECK(*back == plain);
  }
  std::string all;
  for (int i = 0; i < 256; ++i) {
    all += static_cast<char>(i);
  }
  for (std::size_t len = 0; len <= all.size(); len += 7) {
    auto back = base64_decode(base64_encode(all.substr(0, len)));
    REQUIRE(back.ok());
    CHECK(*back == all.substr(0, len));
  }
}

TEST_CASE("base64_decode rejects malformed input") {
  for (const char* bad : {"Zg", "Zg=", "Z===", "Zm9v!A==", "Zg==Zg==", "=Zg=", "Zm=v", "Zg\n=="}) {
    CAPTURE(bad);
    CHECK_FALSE(base64_decode(bad).ok());
  }
}

TEST_CASE("prefix_range_end increments the last byte below 0xff") {
  CHECK(prefix_range_end("/ipoib/v1/") == "/ipoib/v10");
  CHECK(prefix_range_end(std::string("a\xff", 2)) == "b");
  CHECK(prefix_range_end(std::string("\xff\xff", 2)) == std::string(1, '\0'));
  CHECK(prefix_range_end("") == std::string(1, '\0'));
  auto all = RangeRequest::prefix("");
  CHECK(all.key == std::string(1, '\0'));
  CHECK(all.range_end == std::string(1, '\0'));
}

TEST_CASE("request bodies: base64 keys, numbers as strings, zero fields omitted") {
  RangeRequest r = RangeRequest::prefix("/a/");
  r.limit = 10;
  r.revision = 1234567890123LL;
  r.keys_only = true;
  auto j = json::parse(to_json(r));
  CHECK(j == json{{"key", "L2Ev"},
                  {"range_end", "L2Ew"},
                  {"limit", "10"},
                  {"revision", "1234567890123"},
                  {"keys_only", true}});
  CHECK(json::parse(to_json(RangeRequest::single("k"))) == json{{"key", "aw=="}});
  CHECK(json::parse(to_json(PutRequest{"k", "v"})) == json{{"key", "aw=="}, {"value", "dg=="}});

  TxnRequest t;
  t.compare.push_back(Compare::absent("k"));
  t.compare.push_back(Compare::mod_revision_is("m", 7));
  Compare v = Compare::value_is("x", "y");
  v.result = CompareResult::kNotEqual;
  t.compare.push_back(v);
  Compare ver{"z", CompareTarget::kVersion, CompareResult::kGreater, 2, {}};
  t.compare.push_back(ver);
  t.success.emplace_back(PutRequest{"k", "v"});
  t.success.emplace_back(DeleteRangeRequest::single("m"));
  t.failure.emplace_back(RangeRequest::single("k"));
  auto tj = json::parse(to_json(t));
  CHECK(tj["compare"][0] ==
        json{{"key", "aw=="}, {"target", "CREATE"}, {"result", "EQUAL"}, {"create_revision", "0"}});
  CHECK(tj["compare"][1] ==
        json{{"key", "bQ=="}, {"target", "MOD"}, {"result", "EQUAL"}, {"mod_revision", "7"}});
  CHECK(tj["compare"][2] ==
        json{{"key", "eA=="}, {"target", "VALUE"}, {"result", "NOT_EQUAL"}, {"value", "eQ=="}});
  CHECK(tj["compare"][3] ==
        json{{"key", "eg=="}, {"target", "VERSION"}, {"result", "GREATER"}, {"version", "2"}});
  CHECK(tj["success"][0] == json{{"request_put", {{"key", "aw=="}, {"value", "dg=="}}}});
  CHECK(tj["success"][1] == json{{"request_delete_range", {{"key", "bQ=="}}}});
  CHECK(tj["failure"][0] == json{{"request_range", {{"key", "aw=="}}}});
  // Non-UTF-8 credentials never make the builder throw.
  CHECK_FALSE(authenticate_json("root", std::string("\xff\xfe", 2)).empty());
}

// Bodies as etcd 3.4.23's gateway sent them.
TEST_CASE("parses the gateway's responses") {
  auto range = parse_range_response(
      R"({"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709",)"
      R"("revision":"2","raft_term":"2"},"kvs":[{"key":"YQ==","create_revision":"2",)"
      R"("mod_revision":"2","version":"1","value":"MQ=="}],"count":"1"})");
  REQUIRE(range.ok());
  CHECK(range->header.cluster_id == 15118495548433857066ULL);
  CHECK(range->header.member_id == 13668033151171901709ULL);
  CHECK(range->header.revision == 2);
  CHECK(range->count == 1);
  CHECK_FALSE(range->more);
  REQUIRE(range->kvs.size() == 1);
  CHECK(range->kvs[0] == KeyValue{"a", "1", 2, 2, 1, 0});

  auto empty = parse_range_response(R"({"header":{"revision":"9"}})");
  REQUIRE(empty.ok());
  CHECK(empty->kvs.empty());
  CHECK(empty->count == 0);

  auto txn = parse_txn_response(
      R"({"header":{"revision":"3"},"succeeded":true,"responses":[{"response_put":)"
      R"({"header":{"revision":"3"}}},{"response_delete_range":{"header":{"revision":"3"},)"
      R"("deleted":"1"}}]})");
  REQUIRE(txn.ok());
  CHECK(txn->succeeded);
  REQUIRE(txn->responses.size() == 2);
  CHECK(std::holds_alternative<PutResponse>(txn->responses[0]));
  CHECK(std::get<DeleteRangeResponse>(txn->responses[1]).deleted == 1);

  auto failed = parse_txn_response(
      R"({"header":{"revision":"2"},"responses":[{"response_range":{"header":{"revision":"2"},)"
      R"("kvs":[{"key":"YQ==","create_revision":"2","mod_revision":"2","version":"1",)"
      R"("value":"MQ=="}],"count":"1"}}]})");
  REQUIRE(failed.ok());
  CHECK_FALSE(failed->succeeded);
  CHECK(std::get<RangeResponse>(failed->responses[0]).kvs.at(0).value == "1");

  auto status = parse_status_response(
      R"({"header":{"member_id":"13668033151171901709","revision":"4"},"version":"3.4.23",)"
      R"("dbSize":"20480","leader":"13668033151171901709","raftIndex":"8","raftTerm":"2"})");
  REQUIRE(status.ok());
  CHECK(status->is_leader());
  CHECK(status->raft_index == 8);
  CHECK(status->raft_term == 2);
  CHECK(status->db_size == 20480);
  CHECK(status->version == "3.4.23");

  auto del = parse_delete_range_response(R"({"header":{},"deleted":"12"})");
  REQUIRE(del.ok());
  CHECK(del->deleted == 12);
  auto token = parse_authenticate_response(R"({"header":{},"token":"abc.123"})");
  REQUIRE(token.ok());
  CHECK(*token == "abc.123");

  auto ge = parse_gateway_error(
      R"({"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14})");
  REQUIRE(ge.has_value());
  CHECK(ge->code == 14);
  CHECK(ge->message == "etcdserver: no leader");
  CHECK_FALSE(parse_gateway_error("<html>bad gateway</html>").has_value());
}

TEST_CASE("malformed responses are decode errors naming the field, never exceptions") {
  const char* bad[] = {
      "",
      "[]",
      "not json",
      R"({"header":[]})",
      R"({"header":{"revision":"x"}})",
      R"({"header":{"revision":"-"}})",
      R"({"header":{"member_id":"-1"}})",
      R"({"header":{"revision":"99999999999999999999"}})",
      R"({"kvs":{}})",
      R"({"kvs":[1]})",
      R"({"kvs":[{"key":"***"}]})",
      R"({"kvs":[{"key":5}]})",
      R"({"count":true})",
      R"({"more":"yes"})",
  };
  for (const char* body : bad) {
    CAPTURE(body);
    auto r = parse_range_response(body);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == ipoib::ErrorCode::kDecodeFailure);
  }
  for (const char* body : {R"({"responses":{}})", R"({"responses":[{}]})",
                           R"({"responses":[{"response_put":{},"response_range":{}}]})",
                           R"({"responses":[{"response_watch":{}}]})",
                           R"({"responses":[{"response_put":1}]})", R"({"succeeded":1})"}) {
    CAPTURE(body);
    CHECK_FALSE(parse_txn_response(body).ok());
  }
  CHECK_FALSE(parse_authenticate_response(R"({"token":""})").ok());
  CHECK_FALSE(parse_status_response(R"({"leader":{}})").ok());
}

TEST_CASE("parse_endpoints reads whereabouts' etcd_host") {
  auto eps = parse_endpoints(
      " http://10.0.0.1:2379 ,https://etcd-0.local:2380,http://[fd00::1]:12,"
      "https://h2/");
  REQUIRE(eps.ok());
  REQUIRE(eps->size() == 4);
  CHECK((*eps)[0].url() == "http://10.0.0.1:2379");
  CHECK((*eps)[1].tls);
  CHECK((*eps)[1].host == "etcd-0.local");
  CHECK((*eps)[1].port == 2380);
  CHECK((*eps)[2].host == "fd00::1");
  CHECK((*eps)[2].url() == "http://[fd00::1]:12");
  CHECK((*eps)[3].port == 2379);
  for (const char* bad :
       {"", " , ", "10.0.0.1:2379", "ftp://h:1", "http://:1", "http://h:0", "http://h:99999",
        "http://h:1/v3", "http://fd00::1:5", "http://[fd00::1", "http://h:x"}) {
    CAPTURE(bad);
    auto r = parse_endpoints(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == ipoib::ErrorCode::kInvalidNetworkConfig);
  }
}

TEST_CASE("secret files are read only at mode 0600 or stricter") {
  etcd_test::TempDir dir("etcd-unit");
  REQUIRE_FALSE(dir.path().empty());
  const std::string path = dir.path() + "/secret";
  std::ofstream(path) << "s3cret\n";
  for (mode_t mode : {0600, 0400, 0700}) {
    ::chmod(path.c_str(), mode);
    auto r = read_private_file(path, "etcd_key_file");
    REQUIRE(r.ok());
    CHECK(*r == "s3cret\n");
  }
  for (mode_t mode : {0644, 0640, 0604, 0660, 0601}) {
    CAPTURE(mode);
    ::chmod(path.c_str(), mode);
    auto r = read_private_file(path, "etcd_key_file");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == ipoib::ErrorCode::kInvalidNetworkConfig);
    CHECK_THAT(r.error().msg(),
               Catch::Contains("etcd_key_file " + path) && Catch::Contains("chmod 600 " + path));
  }
  CHECK_FALSE(read_private_file(dir.path(), "etcd_key_file").ok());  // a directory
  CHECK_FALSE(read_private_file(dir.path() + "/missing", "etcd_key_file").ok());

  ::chmod(path.c_str(), 0600);
  ConfigKeys keys;
  keys.etcd_host = "http://127.0.0.1:2379";
  keys.etcd_username = "root";
  keys.etcd_password_file = path;
  auto cfg = config_from(keys);
  REQUIRE(cfg.ok());
  CHECK(cfg->password == "s3cret");
  ::chmod(path.c_str(), 0644);
  CHECK_FALSE(config_from(keys).ok());
}

TEST_CASE("Client::create refuses inconsistent TLS settings without touching the network") {
  Config cfg;
  cfg.endpoints = *parse_endpoints("http://127.0.0.1:1");
  cfg.cert_file = "/nonexistent.crt";
  auto r = Client::create(cfg);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == ipoib::ErrorCode::kInvalidNetworkConfig);
  cfg.key_file = "/nonexistent.key";
  CHECK_FALSE(Client::create(cfg).ok());  // certificate files but no https:// endpoint
  cfg.endpoints = *parse_endpoints("https://127.0.0.1:1");
  auto missing = Client::create(cfg);
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.error().msg(), Catch::Contains("/nonexistent.crt"));
}
