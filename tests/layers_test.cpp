// The layering rule: runtime → dispatcher → modules → server, proto beside
// server. A file may include its own layer and the layers below, never above.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fs = std::filesystem;

namespace {

struct source_file {
  std::string path;  // relative to the source tree, e.g. "runtime/process.cpp"
  std::string text;
};

// The rank of a top-level folder; -1 for folders outside the rule (tests, bench).
int rank_of(std::string_view folder) {
  if (folder == "runtime") return 0;
  if (folder == "dispatcher") return 1;
  if (folder == "modules") return 2;
  if (folder == "proto" || folder == "server") return 3;
  return -1;
}

bool may_include(std::string_view from, std::string_view to) {
  if (from == to) return true;
  if (from == "proto" && to == "server") return false;  // proto is beside server, not above
  int a = rank_of(from), b = rank_of(to);
  return b < 0 || b <= a;
}

std::string_view folder_of(std::string_view path) { return path.substr(0, path.find('/')); }

// Every `#include "x/..."` of `files` that reaches a layer above the file's own,
// as "file includes x/...".
std::vector<std::string> layer_violations(const std::vector<source_file>& files) {
  std::vector<std::string> out;
  for (const source_file& f : files) {
    std::string_view from = folder_of(f.path);
    std::istringstream lines(f.text);
    std::string line;
    while (std::getline(lines, line)) {
      std::string_view l(line);
      l.remove_prefix(std::min(l.find_first_not_of(" \t"), l.size()));
      if (!l.starts_with("#")) continue;
      l.remove_prefix(1);
      l.remove_prefix(std::min(l.find_first_not_of(" \t"), l.size()));
      if (!l.starts_with("include")) continue;
      auto open = l.find('"');
      auto close = open == std::string_view::npos ? open : l.find('"', open + 1);
      if (close == std::string_view::npos) continue;  // <system> headers
      std::string_view target = l.substr(open + 1, close - open - 1);
      if (target.find('/') == std::string_view::npos) continue;
      if (!may_include(from, folder_of(target)))
        out.push_back(f.path + " includes " + std::string(target));
    }
  }
  return out;
}

std::vector<source_file> read_sources() {
  std::vector<source_file> files;
  const fs::path root(LUAD_SOURCE_DIR);
  for (const char* folder : {"runtime", "dispatcher", "modules", "proto", "server"}) {
    if (!fs::is_directory(root / folder)) continue;
    for (const auto& entry : fs::recursive_directory_iterator(root / folder)) {
      auto ext = entry.path().extension();
      if (!entry.is_regular_file() || (ext != ".hpp" && ext != ".cpp")) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      std::ostringstream text;
      text << in.rdbuf();
      files.push_back({fs::relative(entry.path(), root).generic_string(), text.str()});
    }
  }
  return files;
}

}  // namespace

TEST_CASE("layers: no source file includes a layer above its own") {
  std::vector<source_file> files = read_sources();
  REQUIRE(files.size() > 50);
  for (const std::string& v : layer_violations(files)) FAIL_CHECK(v);
}

TEST_CASE("layers: the checker names a back edge") {
  std::vector<source_file> files = {
      {"runtime/a.hpp", "#include \"runtime/b.hpp\"\n#include <vector>\n"},
      {"runtime/b.cpp", "// x\n  #  include \"dispatcher/registry.hpp\"\n"},
      {"dispatcher/c.cpp", "#include \"runtime/command.hpp\"\n#include \"modules/modules.hpp\"\n"},
      {"modules/d.cpp", "#include \"dispatcher/clock.hpp\"\n#include \"server/engine.hpp\"\n"},
      {"proto/e.cpp", "#include \"modules/modules.hpp\"\n#include \"server/engine.hpp\"\n"},
      {"server/f.cpp", "#include \"proto/frame.hpp\"\n#include \"modules/modules.hpp\"\n"},
  };
  std::vector<std::string> expected = {
      "runtime/b.cpp includes dispatcher/registry.hpp",
      "dispatcher/c.cpp includes modules/modules.hpp",
      "modules/d.cpp includes server/engine.hpp",
      "proto/e.cpp includes server/engine.hpp",
  };
  CHECK(layer_violations(files) == expected);
}
