// Permission strings: validation, and the http/store checks modules make.
#include "runtime/permissions.hpp"

#include <doctest/doctest.h>

using namespace luad::runtime;

TEST_CASE("permission strings are validated with a reason") {
  CHECK(check_permission("http:example.org").empty());
  CHECK(check_permission("http:127.0.0.1:8080").empty());
  CHECK(check_permission("http:[::1]:8080").empty());
  CHECK(check_permission("http:*").empty());
  CHECK(check_permission("http:insecure").empty());
  CHECK(check_permission("store:demo_1").empty());
  CHECK(check_permission("http:host:99999").find("bad http permission") == 0);
  CHECK(check_permission("http:").find("bad http permission") == 0);
  CHECK(check_permission("store:").find("bad store permission") == 0);
  CHECK(check_permission("store:a/b").find("bad store permission") == 0);
  CHECK(check_permission("fs:/etc").find("unknown permission") == 0);
}

TEST_CASE("http permissions match host (any case) and port") {
  permission_list p{"http:Example.org", "http:127.0.0.1:8080", "http:[::1]:9000"};
  CHECK(allows_http(p, "example.org", 443));
  CHECK(allows_http(p, "EXAMPLE.ORG", 80));
  CHECK(allows_http(p, "127.0.0.1", 8080));
  CHECK_FALSE(allows_http(p, "127.0.0.1", 8081));
  CHECK(allows_http(p, "::1", 9000));
  CHECK_FALSE(allows_http(p, "evil.org", 80));
  CHECK_FALSE(allows_http({}, "example.org", 80));
  CHECK(allows_http({"http:*"}, "anything", 1));
  CHECK_FALSE(allows_insecure_tls(p));
  CHECK(allows_insecure_tls({"http:insecure"}));
  CHECK_FALSE(allows_http({"http:insecure"}, "insecure", 80));
}

TEST_CASE("store permissions name namespaces; the first is the default") {
  permission_list p{"http:x", "store:orders", "store:cache"};
  CHECK(allows_store(p, "orders"));
  CHECK(allows_store(p, "cache"));
  CHECK_FALSE(allows_store(p, "other"));
  CHECK(default_store_namespace(p) == "orders");
  CHECK_FALSE(default_store_namespace({"http:x"}).has_value());
}
