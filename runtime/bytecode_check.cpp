// Walks a lua_dump of Lua 5.4 (lundump.c's layout) and measures, per function,
// how deep getobjname could recurse when it names a register in an error.
//
// DESIGN. getobjname(reg) finds the last instruction before the error that set
// reg (findsetreg) and, for MOVE from a lower register, GETFIELD and GETTABLE,
// recurses on the source register (and GETTABLE's key). We follow the code in
// order keeping, per register, the height of that recursion for its current
// value, with findsetreg's notion of which registers an instruction sets;
// ignoring jumps only overestimates. The walk is linear in the dump.
#include "runtime/bytecode_check.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

namespace luad::runtime {

namespace {

// Opcodes of Lua 5.4 (lopcodes.h) that the walk distinguishes.
enum op : std::uint8_t {
  op_move = 0,
  op_loadnil = 8,
  op_gettable = 12,
  op_getfield = 14,
  op_jmp = 56,
  op_call = 68,
  op_tailcall = 69,
  op_tforcall = 76,
  op_last = 82,
};

// testAMode of lopcodes.c: does the instruction set register A?
bool sets_a(unsigned o) {
  switch (o) {
    case 10:
    case 15:
    case 16:
    case 17:
    case 18:  // SETUPVAL, SET*
    case 46:
    case 47:
    case 48:  // MMBIN*
      return false;
    default: break;
  }
  if (o >= 54 && o <= 66) return false;  // CLOSE, TBC, JMP, comparisons, TEST
  if (o >= 70 && o <= 72) return false;  // RETURN*
  return o != 75 && o != 76 && o != 78 && o != 82;
}

class reader {
 public:
  reader(const char* p, std::size_t n)
      : p_(reinterpret_cast<const unsigned char*>(p)), end_(p_ + n) {}

  const char* error = nullptr;

  bool skip(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n) return fail();
    p_ += n;
    return true;
  }
  bool byte(unsigned& out) {
    if (p_ == end_) return fail();
    out = *p_++;
    return true;
  }
  bool size(std::size_t& out) {  // loadUnsigned
    out = 0;
    for (;;) {
      unsigned b;
      if (!byte(b)) return false;
      if (out >> 50) return fail();
      out = (out << 7) | (b & 0x7f);
      if (b & 0x80) return true;
    }
  }
  bool string() {  // loadStringN: size 0 is NULL, else size - 1 bytes
    std::size_t n;
    return size(n) && (n == 0 || skip(n - 1));
  }
  const unsigned char* here() const { return p_; }
  bool function(int level);

 private:
  bool fail() {
    if (!error) error = "malformed chunk dump";
    return false;
  }
  bool code(std::size_t n);

  const unsigned char* p_;
  const unsigned char* end_;
};

bool reader::code(std::size_t n) {
  const unsigned char* start = p_;
  if (n > static_cast<std::size_t>(end_ - p_) / 4) return fail();
  p_ += 4 * n;
  std::array<int, 256> height{};
  for (std::size_t pc = 0; pc < n; ++pc) {
    std::uint32_t i;
    std::memcpy(&i, start + 4 * pc, 4);
    unsigned o = i & 0x7f, a = (i >> 7) & 0xff, b = (i >> 16) & 0xff, c = (i >> 24) & 0xff;
    if (o > op_last) return fail();
    int h = 0;
    switch (o) {
      case op_loadnil:
        for (unsigned r = a; r <= a + b && r < 256; ++r) height[r] = 0;
        continue;
      case op_call:
      case op_tailcall: std::fill(height.begin() + a, height.end(), 0); continue;
      case op_tforcall:
        if (a + 2 < 256) std::fill(height.begin() + a + 2, height.end(), 0);
        continue;
      case op_jmp: continue;
      case op_move: h = b < a ? height[b] + 1 : 0; break;
      case op_getfield: h = height[b] + 1; break;
      case op_gettable: h = std::max(height[b], height[c]) + 1; break;
      default: break;
    }
    if (!sets_a(o)) continue;
    if (h > max_read_chain) {
      error = "a chain of table reads is too long (Lua 5.4.4 could overflow its C stack naming it)";
      return false;
    }
    height[a] = h;
  }
  return true;
}

bool reader::function(int level) {
  if (level > 250) return fail();  // the parser nests at most 200 functions
  std::size_t n, m;
  if (!string() || !size(n) || !size(n) || !skip(3)) return false;  // source, lines, 3 bytes
  if (!size(n) || !code(n)) return false;
  if (!size(n)) return false;
  for (std::size_t k = 0; k < n; ++k) {  // constants
    unsigned t;
    if (!byte(t)) return false;
    if (t == 3 || t == 19) {  // integer, float
      if (!skip(8)) return false;
    } else if (t == 4 || t == 20) {  // short, long string
      if (!string()) return false;
    } else if (t != 0 && t != 1 && t != 17) {  // nil, false, true
      return fail();
    }
  }
  if (!size(n) || n > static_cast<std::size_t>(end_ - p_) / 3 || !skip(3 * n)) return false;
  if (!size(n)) return false;
  for (std::size_t k = 0; k < n; ++k) {
    if (!function(level + 1)) return false;
  }
  if (!size(n) || !skip(n)) return false;  // lineinfo
  if (!size(n)) return false;              // abslineinfo
  for (std::size_t k = 0; k < n; ++k) {
    if (!size(m) || !size(m)) return false;
  }
  if (!size(n)) return false;  // locvars
  for (std::size_t k = 0; k < n; ++k) {
    if (!string() || !size(m) || !size(m)) return false;
  }
  if (!size(n)) return false;  // upvalue names
  for (std::size_t k = 0; k < n; ++k) {
    if (!string()) return false;
  }
  return true;
}

}  // namespace

const char* check_read_chains(const char* dump, std::size_t size) noexcept {
  // Header: signature(4) version format LUAC_DATA(6) 3 sizes LUAC_INT(8)
  // LUAC_NUM(8), then the main closure's upvalue count.
  constexpr std::size_t header = 4 + 1 + 1 + 6 + 3 + 8 + 8 + 1;
  reader r(dump, size);
  if (!r.skip(header) || !r.function(0)) return r.error ? r.error : "malformed chunk dump";
  return nullptr;
}

}  // namespace luad::runtime
