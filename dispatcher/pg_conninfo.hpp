// What luad reads from a libpq connection string or postgresql:// URL
// without connecting: whether libpq can use it, whether it carries a
// password, and the text to show of it (never the password). libpq only, so
// that the config reader (server/config.cpp) can check [storage] url with no
// more than this.
#pragma once

#include <optional>
#include <string>

namespace luad::dispatcher {

/// Why `conninfo` cannot be used (libpq's reason: a malformed URL, an
/// unknown keyword), or nullopt.
std::optional<std::string> pg_conninfo_error(const std::string& conninfo);
/// Whether `conninfo` holds a password.
bool pg_conninfo_has_password(const std::string& conninfo);
/// `conninfo` without its password, for logs and errors: "postgres: host=..
/// dbname=..".
std::string pg_conninfo_redacted(const std::string& conninfo);

}  // namespace luad::dispatcher
