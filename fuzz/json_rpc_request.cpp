// Fuzzes the JSON-RPC request parser (proto::parse_request): any line a client
// may send. A line it accepts must frame back into a line it accepts again,
// with the same method, id kind and parameter names. (Values are not compared:
// Boost 1.81 parses doubles to within an ulp, not exactly.)
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "proto/json_rpc.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  if (luad::proto::is_blank(line)) return 0;
  auto parsed = luad::proto::parse_request(line);
  auto* req = std::get_if<luad::proto::request>(&parsed);
  if (!req) return 0;
  std::string again =
      luad::proto::frame(luad::proto::make_request(req->id, req->method, req->params));
  again.pop_back();  // the '\n'
  auto reparsed = luad::proto::parse_request(again);
  auto* req2 = std::get_if<luad::proto::request>(&reparsed);
  if (!req2 || req2->method != req->method || req2->params.size() != req->params.size() ||
      req2->id.kind() != req->id.kind())
    std::abort();
  for (const auto& [key, value] : req->params)
    if (!req2->params.contains(key)) std::abort();
  return 0;
}
