// Script names made into canonical paths by their text and a few stat calls
// (see script_path.hpp for why not std::filesystem's path objects).
#include "runtime/script_path.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <system_error>
#include <vector>

#include "runtime/result.hpp"
#include "runtime/utf8.hpp"

namespace luad::runtime {

namespace {

/// A component of a path's text: [begin, end) between separators.
struct component {
  std::size_t begin;
  std::size_t end;
};

/// The components after the root, as std::filesystem::path iterates them:
/// separators collapsed, and one empty component last when the text ends
/// with a separator (it asks that what comes before be a folder).
std::vector<component> components_of(std::string_view path) {
  std::vector<component> parts;
  std::size_t at = 0;
  while (at < path.size() && path[at] == '/') ++at;
  while (at < path.size()) {
    std::size_t end = path.find('/', at);
    if (end == std::string_view::npos) end = path.size();
    parts.push_back({at, end});
    at = end;
    while (at < path.size() && path[at] == '/') ++at;
    if (at == path.size() && end < path.size()) parts.push_back({at, at});  // trailing '/'
  }
  return parts;
}

/// Errors that mean "no such file" to std::filesystem::status.
bool not_found(int err) { return err == ENOENT || err == ENOTDIR; }

[[noreturn]] void fail(const char* what, std::string_view path, int err) {
  throw std::filesystem::filesystem_error(what, std::filesystem::path(path),
                                          std::error_code(err, std::generic_category()));
}

/// realpath(3): the file system's canonical name of `path`, which exists.
std::string canonical(const std::string& path) {
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(path.c_str(), nullptr), &std::free);
  if (!real) fail("canonical", path, errno);
  return real.get();
}

/// 0 when `path` can be stat'ed, else errno.
int stat_error(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? 0 : errno;
}

}  // namespace

std::string lexically_normal(std::string_view path) {
  // Only separators: std::filesystem keeps them as they are (one root).
  if (path.find_first_not_of('/') == std::string_view::npos) return std::string(path);
  const bool absolute = path.front() == '/';
  std::vector<std::string_view> names;
  bool trailing = false;  // the text ends with a separator after the last name
  for (const component& c : components_of(path)) {
    std::string_view name = path.substr(c.begin, c.end - c.begin);
    if (name.empty() || name == ".") {
      if (!names.empty()) trailing = true;
    } else if (name == "..") {
      if (!names.empty() && names.back() != "..") {
        names.pop_back();  // "name/.." is nothing
        trailing = !names.empty();
      } else if (names.empty() && absolute) {
        // ".." at the root is the root
      } else {
        names.push_back(name);
        trailing = false;
      }
    } else {
      names.push_back(name);
      trailing = false;
    }
  }
  if (trailing && names.back() == "..") trailing = false;
  std::string out = absolute ? "/" : "";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i) out += '/';
    out += names[i];
  }
  if (trailing) out += '/';
  if (out.empty()) out = ".";
  return out;
}

std::string weakly_canonical(std::string_view base, std::string_view script) {
  std::string joined;
  if (!script.empty() && script.front() == '/') {
    joined = script;
  } else if (script.empty()) {
    joined = base;  // the base itself
  } else {
    joined = base;
    if (!joined.empty() && joined.back() != '/') joined += '/';
    joined += script;
  }
  if (joined.empty()) return {};
  int err = stat_error(joined);
  if (err == 0) return canonical(joined);
  if (!not_found(err)) fail("weakly_canonical", joined, err);

  // The longest leading part that exists. A path walk stops at the first
  // component it cannot pass, so once a prefix is missing every longer one
  // is too: a binary search finds the first missing one in log2(n) stats.
  std::vector<component> parts = components_of(joined);
  std::size_t lo = 0, hi = parts.empty() ? 0 : parts.size() - 1;  // parts[hi]'s prefix is missing
  auto prefix = [&](std::size_t k) {
    return joined.substr(0, k + 1 < parts.size() ? parts[k].end : joined.size());
  };
  while (lo < hi) {
    std::size_t mid = lo + (hi - lo) / 2;
    if (int e = stat_error(prefix(mid)); e != 0) {
      hi = mid;
      err = e;
    } else {
      lo = mid + 1;
    }
  }
  if (!not_found(err)) fail("weakly_canonical", joined, err);
  std::string existing = lo > 0                  ? prefix(lo - 1)
                         : joined.front() == '/' ? std::string("/")
                                                 : std::string();
  std::size_t rest_begin = parts.empty() ? joined.size() : parts[lo].begin;
  if (existing.empty()) return lexically_normal(std::string_view(joined).substr(rest_begin));
  std::string out = canonical(existing);
  out += '/';
  out += std::string_view(joined).substr(rest_begin);
  return lexically_normal(out);
}

error script_name_error(std::string_view script, std::error_code code) {
  constexpr std::size_t shown_bytes = 200;
  std::string quoted = "script '";
  quoted += utf8_prefix(script, shown_bytes);
  quoted +=
      script.size() > shown_bytes ? "...' (" + std::to_string(script.size()) + " bytes)" : "'";
  const int err = code.value();
  if (err == ENAMETOOLONG)
    return fail(error_kind::invalid, quoted +
                                         ": name too long for the file system (a path may be " +
                                         std::to_string(PATH_MAX) + " bytes, one name in it " +
                                         std::to_string(NAME_MAX) + ")");
  if (err == ELOOP)
    return fail(error_kind::invalid, quoted + ": too many levels of symbolic links");
  if (err == EACCES)
    return fail(error_kind::permission_denied,
                quoted + ": a folder on its path may not be searched");
  return fail(error_kind::not_found, quoted + ": " + code.message());
}

}  // namespace luad::runtime
