// Script names made into canonical paths, in time linear in their length:
// what std::filesystem::weakly_canonical gives, without splitting the name
// into one path object per component. A script may ask for a name near
// PATH_MAX with two thousand components ("x/x/x/..."): weakly_canonical
// appends them one at a time, ~1 ms a name here, and under TSan each of its
// growing copies is fresh mapped memory (the hostile corpus's long-names
// script took 50 s and 2 GB there).
#pragma once

#include <string>
#include <string_view>
#include <system_error>

#include "runtime/value.hpp"

namespace luad::runtime {

/// `path` in normal form, by its text alone (std::filesystem's
/// lexically_normal): repeated separators made one, "." removed, "name/.."
/// removed, ".." after the root dropped, "." if nothing is left.
std::string lexically_normal(std::string_view path);

/// `script` resolved against folder `base` (`script` whole when absolute,
/// `base` whole when `script` is empty)
/// and made canonical as std::filesystem::weakly_canonical does: the part
/// that exists has its links and dots resolved by the file system, the rest
/// is normalised by text. Throws std::filesystem::filesystem_error where
/// weakly_canonical does (a component that cannot be read, a name too long).
std::string weakly_canonical(std::string_view base, std::string_view script);

/// What a client or script is told when weakly_canonical threw `code` for
/// `script`: `invalid` for a name too long for the file system (ENAMETOOLONG)
/// or a loop of links (ELOOP), `permission_denied` for a folder that may not
/// be searched (EACCES), else `not_found`. The message quotes the script's
/// first 200 bytes and never the folder it was resolved against, which is the
/// server's own layout.
error script_name_error(std::string_view script, std::error_code code);

}  // namespace luad::runtime
