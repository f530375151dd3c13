#include "ipoib/cni/args.h"

#include <catch2/catch.hpp>

using namespace ipoib;
using namespace ipoib::cni;

TEST_CASE("CNI_ARGS as real runtimes send it", "[cni][args]") {
  struct Case {
    std::string name;
    std::string text;
    std::string ns, pod, infra, uid;
  };
  const std::vector<Case> table = {
      {"empty string", "", "", "", "", ""},
      {"containerd",
       "IgnoreUnknown=1;K8S_POD_NAMESPACE=mpi;K8S_POD_NAME=worker-0;"
       "K8S_POD_INFRA_CONTAINER_ID=4f8a;K8S_POD_UID=0b7c-11",
       "mpi", "worker-0", "4f8a", "0b7c-11"},
      {"arbitrary order",
       "K8S_POD_UID=u;K8S_POD_NAME=p;IgnoreUnknown=1;K8S_POD_INFRA_CONTAINER_ID=i;"
       "K8S_POD_NAMESPACE=n",
       "n", "p", "i", "u"},
      {"Multus thin mode repeats the keys",
       "IgnoreUnknown=true;K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;K8S_POD_INFRA_CONTAINER_ID=c;"
       "K8S_POD_UID=d;IgnoreUnknown=true;K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;"
       "K8S_POD_INFRA_CONTAINER_ID=c;K8S_POD_UID=d",
       "a", "b", "c", "d"},
      {"IgnoreUnknown TRUE in capitals with an unknown key",
       "IgnoreUnknown=TRUE;K8S_POD_NAMESPACE=n;K8S_POD_NAME=p;FOO=bar", "n", "p", "", ""},
      {"IgnoreUnknown after the unknown key", "FOO=bar;K8S_POD_NAME=p;IgnoreUnknown=True", "", "p",
       "", ""},
      {"empty elements", ";K8S_POD_NAME=p;;", "", "p", "", ""},
      {"empty value", "K8S_POD_NAMESPACE=;K8S_POD_NAME=p", "", "p", "", ""},
      {"deprecated Multus keys are known", "MAC=80:00:00:48;IP=10.0.0.5/24;GATEWAY=10.0.0.1", "",
       "", "", ""},
  };
  for (const auto& c : table) {
    INFO(c.name);
    const auto a = parse_cni_args(c.text);
    REQUIRE(a.ok());
    CHECK(a->pod_namespace == c.ns);
    CHECK(a->pod_name == c.pod);
    CHECK(a->pod_infra_container_id == c.infra);
    CHECK(a->pod_uid == c.uid);
  }
}

TEST_CASE("CNI_ARGS values containing '=' split on the first '='", "[cni][args]") {
  const auto a = parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=a=b;EXTRA==x=");
  REQUIRE(a.ok());
  CHECK(a->pod_name == "a=b");
  CHECK(a->get("EXTRA") == std::optional<std::string>("=x="));
}

TEST_CASE("CNI_ARGS duplicated keys keep every pair and the last value", "[cni][args]") {
  const auto a = parse_cni_args("K8S_POD_NAME=first;IP=10.0.0.5/24;K8S_POD_NAME=second");
  REQUIRE(a.ok());
  CHECK(a->pod_name == "second");
  CHECK(a->get("K8S_POD_NAME") == std::optional<std::string>("second"));
  CHECK(a->get("IP") == std::optional<std::string>("10.0.0.5/24"));
  CHECK_FALSE(a->get("MAC").has_value());
  REQUIRE(a->pairs.size() == 3);
  CHECK(a->pairs[0] == std::pair<std::string, std::string>("K8S_POD_NAME", "first"));
}

TEST_CASE("CNI_ARGS IgnoreUnknown values", "[cni][args]") {
  for (const std::string v : {"1", "true", "TRUE", "True", "tRuE"}) {
    INFO(v);
    const auto a = parse_cni_args("IgnoreUnknown=" + v + ";X=y");
    REQUIRE(a.ok());
    CHECK(a->ignore_unknown);
  }
  for (const std::string v : {"0", "false", "FALSE"}) {
    INFO(v);
    const auto a = parse_cni_args("IgnoreUnknown=" + v + ";K8S_POD_NAME=p");
    REQUIRE(a.ok());
    CHECK_FALSE(a->ignore_unknown);
  }
}

TEST_CASE("CNI_ARGS errors are code 4 naming the problem", "[cni][args]") {
  struct Case {
    std::string text;
    std::string msg_part;
  };
  const std::vector<Case> table = {
      {"FOO=bar", "unknown args \"FOO\""},
      {"K8S_POD_NAME=p;FOO=1;BAR=2", "unknown args \"FOO\", \"BAR\""},
      {"IgnoreUnknown=0;FOO=bar", "unknown args \"FOO\""},
      {"IgnoreUnknown=1;IgnoreUnknown=0;FOO=bar", "unknown args \"FOO\""},
      {"ignoreunknown=1;FOO=bar", "unknown args \"ignoreunknown\", \"FOO\""},
      {"IgnoreUnknown=yes", "IgnoreUnknown must be 1, 0, true or false"},
      {"K8S_POD_NAME", "invalid pair \"K8S_POD_NAME\""},
      {"=value", "invalid pair \"=value\""},
  };
  for (const auto& c : table) {
    INFO(c.text);
    const auto a = parse_cni_args(c.text);
    REQUIRE_FALSE(a.ok());
    CHECK(a.error().code() == ErrorCode::kInvalidEnvironment);
    CHECK_THAT(a.error().msg(), Catch::Contains(c.msg_part));
  }
}

TEST_CASE("pod_ref needs namespace and name", "[cni][args]") {
  CHECK(parse_cni_args("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p")->pod_ref() == "ns/p");
  CHECK(parse_cni_args("K8S_POD_NAME=p")->pod_ref().empty());
  CHECK(parse_cni_args("K8S_POD_NAMESPACE=ns")->pod_ref().empty());
}
