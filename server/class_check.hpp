// `luad check`'s look at each workflow's module classes: a literal `require` of
// a module its classes do not allow, in its script or a file package it
// requires, would make the workflow fail at start.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/module.hpp"
#include "server/config.hpp"

namespace luad::server {

/// One literal require found in Lua source: the module or package name and
/// its line.
struct required_name {
  std::string name;
  int line;
};

/// The literal requires in `source`: `require("x")`, `require "x"`,
/// `require 'x'`, `require [[x]]`, `require(  "x"  )`, outside comments and
/// strings. A lexical scan, not a parser: a name built at run time
/// (`require(n)`), `require` under another name (`local r = require`), and code
/// in strings given to `load` are not seen; `t.require("x")` and
/// `t:require("x")` are skipped as not the global.
std::vector<required_name> literal_requires(std::string_view source);

/// "FILE:LINE: workflow W: require 'M' needs classes (C) but the workflow's
/// classes are (D)" for each literal require, in the workflow's script and in
/// the file packages it requires (found below the script's folder, as the
/// daemon's `require` finds them), of a module in `modules` whose classes
/// `w.classes` does not allow. Files that cannot be read are skipped (the
/// daemon reports them when the workflow starts).
std::vector<std::string> class_problems(const workflow_config& w,
                                        std::span<const runtime::module_def* const> modules);

/// class_problems of every workflow of `c`, against the daemon's modules.
std::vector<std::string> class_problems(const config& c);

}  // namespace luad::server
