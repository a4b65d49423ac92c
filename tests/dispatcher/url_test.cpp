// http(s) URL parsing for the fetch dispatcher, and redirect resolution.
#include "dispatcher/url.hpp"

#include <doctest/doctest.h>

#include "tests/support.hpp"

using luad::dispatcher::http_url;
using luad::dispatcher::parse_http_url;
using luad::dispatcher::resolve_location;
using luad::test::has;

TEST_CASE("http urls: default ports, targets, IPv6 and case") {
  http_url u;
  std::string why;
  REQUIRE(parse_http_url("http://Example.ORG", u, why));
  CHECK_FALSE(u.tls);
  CHECK(u.host == "example.org");
  CHECK(u.port == 80);
  CHECK(u.target == "/");
  CHECK(u.host_header() == "example.org");
  CHECK(u.authority() == "example.org:80");

  REQUIRE(parse_http_url("https://[::1]:8443/a/b?x=1&y=%20#frag", u, why));
  CHECK(u.tls);
  CHECK(u.host == "::1");
  CHECK(u.port == 8443);
  CHECK(u.target == "/a/b?x=1&y=%20");
  CHECK(u.text == "https://[::1]:8443/a/b?x=1&y=%20");
  CHECK(u.host_header() == "[::1]:8443");
  CHECK(u.authority() == "[::1]:8443");

  REQUIRE(parse_http_url("https://h/", u, why));
  CHECK(u.port == 443);
}

TEST_CASE("http urls: refusals say why") {
  http_url u;
  std::string why;
  CHECK_FALSE(parse_http_url("ftp://h/", u, why));
  CHECK(has(why, "unsupported scheme 'ftp'"));
  CHECK_FALSE(parse_http_url("http://", u, why));
  CHECK(has(why, "no host"));
  CHECK_FALSE(parse_http_url("http://user:pw@h/", u, why));
  CHECK(has(why, "user info"));
  CHECK_FALSE(parse_http_url("http://h:0/", u, why));
  CHECK_FALSE(parse_http_url("http://h:99999/", u, why));
  CHECK_FALSE(parse_http_url("not a url", u, why));
  CHECK(why.find("bad URL") == 0);
  CHECK_FALSE(parse_http_url("/relative", u, why));
}

TEST_CASE("http urls: a Location resolves against the URL that sent it") {
  http_url base, next;
  std::string why;
  REQUIRE(parse_http_url("http://a.test:8080/x/y?q", base, why));
  REQUIRE(resolve_location(base, "z", next, why));
  CHECK(next.text == "http://a.test:8080/x/z");
  REQUIRE(resolve_location(base, "/root", next, why));
  CHECK(next.target == "/root");
  REQUIRE(resolve_location(base, "//b.test/p", next, why));
  CHECK(next.host == "b.test");
  CHECK(next.port == 80);
  REQUIRE(resolve_location(base, "https://c.test/", next, why));
  CHECK(next.tls);
  CHECK_FALSE(resolve_location(base, "mailto:x@y", next, why));
}
