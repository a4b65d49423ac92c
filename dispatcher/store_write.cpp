// The store's write rules over store_rows (store_write.hpp).
#include "dispatcher/store_write.hpp"

#include "dispatcher/store_ops.hpp"
#include "runtime/message_codec.hpp"

namespace luad::dispatcher {

using runtime::error_kind;

namespace {

bool has_field(const runtime::value& args, std::string_view name) {
  const runtime::value* v = args.find(name);
  return v && !v->is_nil();
}

}  // namespace

// Every write first looks up the row's size so that the ledger knows what it
// adds or gives back.
runtime::outcome apply_store_write(store_rows& rows, ledger& book, const runtime::value& args,
                                   double now) {
  std::string_view op = text_field(args, "op");
  std::string_view ns = text_field(args, "ns");
  std::string_view key = text_field(args, "key");
  auto failed = [&](const char* during) { return runtime::outcome::failure(rows.failure(during)); };
  stored_row row;
  if (!rows.find(ns, key, now, row)) return failed("size");
  std::uint64_t quota = 0;
  // Whether `bytes` may replace the row; on false, `refusal` says why.
  runtime::outcome refusal;
  auto room_for = [&](std::string_view bytes) {
    std::int64_t delta = static_cast<std::int64_t>(key.size() + bytes.size()) - row.bytes;
    if (book.fits(ns, delta, quota)) return true;
    refusal = over_quota(op, ns, book.used(ns), delta, quota);
    return false;
  };
  auto put = [&](std::string_view bytes, const runtime::value* ttl) {
    const double* secs = ttl ? ttl->get<double>() : nullptr;  // the module sends a float
    if (!rows.put(ns, key, bytes, secs ? std::optional<double>(now + *secs) : std::nullopt))
      return false;
    book.add(ns, static_cast<std::int64_t>(key.size() + bytes.size()) - row.bytes);
    book.wrote(key.size() + bytes.size());
    return true;
  };
  auto erase = [&] {
    if (!rows.erase(ns, key)) return false;
    book.add(ns, -row.bytes);
    return true;
  };
  if (op == "set") {
    if (!room_for(text_field(args, "value"))) return refusal;
    if (!put(text_field(args, "value"), args.find("ttl"))) return failed("set");
    return runtime::outcome::success(true);
  }
  if (op == "delete") {
    if (row.bytes == 0) return runtime::outcome::success(false);
    if (!erase()) return failed("delete");
    return runtime::outcome::success(row.live);
  }
  if (op == "incr") {
    std::int64_t delta = integer_field(args, "by", 1);
    std::optional<std::string> old;
    if (!rows.live_value(ns, key, now, old)) return failed("incr");
    std::int64_t current = 0;
    if (old && !runtime::decode_integer(*old, current)) {
      return runtime::outcome::failure(
          {error_kind::invalid, "store.incr: the value is not an integer", false, {}});
    }
    std::int64_t next;
    if (__builtin_add_overflow(current, delta, &next)) {
      return runtime::outcome::failure(
          {error_kind::invalid, "store.incr: integer overflow", false, {}});
    }
    std::string bytes;
    runtime::encode_value(runtime::value(next), bytes);
    if (!room_for(bytes)) return refusal;
    if (!put(bytes, nullptr)) return failed("incr");
    return runtime::outcome::success(next);
  }
  if (op == "cas") {
    std::optional<std::string> old;
    if (!rows.live_value(ns, key, now, old)) return failed("cas");
    bool want_absent = !has_field(args, "expected");
    bool matches =
        want_absent ? !old.has_value() : (old.has_value() && *old == text_field(args, "expected"));
    if (!matches) return runtime::outcome::success(false);
    if (has_field(args, "value")) {
      if (!room_for(text_field(args, "value"))) return refusal;
      if (!put(text_field(args, "value"), nullptr)) return failed("cas");
    } else if (!erase()) {
      return failed("cas");
    }
    return runtime::outcome::success(true);
  }
  return runtime::outcome::failure(
      {error_kind::invalid, "store: unknown write '" + std::string(op) + "'", false, {}});
}

}  // namespace luad::dispatcher
