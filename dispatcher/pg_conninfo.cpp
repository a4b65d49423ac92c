// Reading connection strings with libpq's parser (pg_conninfo.hpp).
#include "dispatcher/pg_conninfo.hpp"

#include <libpq-fe.h>

#include <string_view>

namespace luad::dispatcher {

namespace {

// The parsed options, freed when it goes; null when libpq refused the text
// (`why` then says why).
struct parsed {
  explicit parsed(const std::string& conninfo) {
    char* err = nullptr;
    opts = PQconninfoParse(conninfo.c_str(), &err);
    if (err) {
      why = err;
      PQfreemem(err);
    }
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
  }
  ~parsed() {
    if (opts) PQconninfoFree(opts);
  }
  parsed(const parsed&) = delete;
  parsed& operator=(const parsed&) = delete;

  PQconninfoOption* opts = nullptr;
  std::string why;
};

}  // namespace

std::optional<std::string> pg_conninfo_error(const std::string& conninfo) {
  parsed p(conninfo);
  if (p.opts) return std::nullopt;
  return "bad connection string: " + (p.why.empty() ? std::string("out of memory") : p.why);
}

bool pg_conninfo_has_password(const std::string& conninfo) {
  parsed p(conninfo);
  if (!p.opts) return false;
  for (PQconninfoOption* o = p.opts; o->keyword; ++o)
    if (std::string_view(o->keyword) == "password" && o->val && *o->val) return true;
  return false;
}

std::string pg_conninfo_redacted(const std::string& conninfo) {
  parsed p(conninfo);
  if (!p.opts) return "(a malformed connection string)";
  std::string out;
  for (PQconninfoOption* o = p.opts; o->keyword; ++o) {
    if (!o->val || !*o->val || std::string_view(o->keyword) == "password") continue;
    if (!out.empty()) out += ' ';
    out += std::string(o->keyword) + "=" + o->val;
  }
  return "postgres:" + (out.empty() ? std::string(" (libpq defaults)") : " " + out);
}

}  // namespace luad::dispatcher
