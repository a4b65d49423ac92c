// The `process` module's messages: send (deep copy through the message
// codec, the owner rule of runtime/owners.hpp, mailbox checks), selective receive with topics and a
// timeout (a waiting receive is a pooled yield), and cancel.
#include <array>
#include <cmath>
#include <string>

#include "modules/modules.hpp"
#include "modules/process_parts.hpp"
#include "runtime/command.hpp"
#include "runtime/lua_value.hpp"
#include "runtime/message_codec.hpp"
#include "runtime/post.hpp"
#include "runtime/result.hpp"
#include "runtime/string_cache.hpp"
#include "runtime/yield.hpp"

namespace luad::modules::process_parts {

namespace {

using runtime::message;

constexpr std::size_t k_max_topics = 16;
constexpr std::size_t k_keep_buffer = std::size_t{1} << 20;

// Encodes the payload (argument 3) and delivers it with `topic` (argument 2).
runtime::status send_to(lua_State* L, pid to, std::string_view topic, bool named) noexcept {
  try {
    thread_local std::string encoded;
    thread_local std::string reason;
    encoded.clear();
    process* self = process::of(L);
    if (!runtime::encode_message(L, 3, encoded, reason, self->context().limits.message_bytes)) {
      return runtime::fail(
          reason.find("larger than") != std::string::npos ? error_kind::limit : error_kind::invalid,
          reason);
    }
    process* target = to ? self->target(to) : nullptr;
    if (!target) {
      self->owner().count_dead_letter();
      return runtime::done{};
    }
    if (target->context().owner != self->context().owner) {  // runtime/owners.hpp
      if (!self->owner().permitted(*self, "send", to.to_string()))
        return runtime::fail(error_kind::permission_denied,
                             "this process may not send to a process of another owner");
      auto verb = runtime::verb_of_topic(topic);
      if (runtime::status ok = runtime::may_act(self->context(), target->context(), verb, named);
          !ok)
        return ok;
    }
    // Within the receiver's mailbox limits (count and bytes), charged to it.
    runtime::status sent = runtime::post(*target, self->id(), topic, encoded);
    // A worker keeps one buffer: after a large message, give its memory back.
    if (encoded.capacity() > k_keep_buffer) std::string().swap(encoded);
    return sent;
  } catch (const std::bad_alloc&) {
    return runtime::fail(error_kind::limit, "out of memory");  // (fits without allocating)
  }
}

}  // namespace

namespace {

// process.send itself, in any process.
int send_now(lua_State* L) {
  bool named;
  pid to = check_pid(L, 1, true, &named);
  std::size_t topic_len;
  const char* topic = luaL_checklstring(L, 2, &topic_len);
  lua_settop(L, 3);
  int n = 0;
  {
    runtime::status sent = send_to(L, to, std::string_view(topic, topic_len), named);
    if (!sent) n = runtime::push_failure(L, sent.error());
  }
  if (n < 0) return lua_error(L);  // Lua's memory error, raised once `sent` is gone
  if (n > 0) return n;
  lua_pushboolean(L, 1);
  return 1;
}

}  // namespace

// In a durable run a send is a side effect: sent live and recorded, so that a
// replay returns what it returned and does not send it again.
int process_send(lua_State* L) {
  if (!process::of(L)->durable()) return send_now(L);
  lua_settop(L, 3);
  lua_pushcfunction(L, send_now);
  lua_insert(L, 1);
  return side_effect_call(L);
}

namespace {

// --- receive ------------------------------------------------------------------

// What a receive hands the script: one table {topic, from, payload}
// (process.receive), or the three as values, topic, payload, from
// (process.recv), which costs no table: about a quarter of a message's hop.
enum class receive_form : std::uint8_t { table, values };

// With topic, payload and from on the top of the stack: leaves them as the
// three results (values), or replaces them with one msg table. Returns the
// number of results. Raises only Lua memory errors.
int shape_received(lua_State* L, receive_form form) {
  if (form == receive_form::values) return 3;
  lua_createtable(L, 0, 3);
  lua_rotate(L, -4, 1);  // msg, topic, payload, from
  lua_setfield(L, -4, "from");
  lua_setfield(L, -3, "payload");
  lua_setfield(L, -2, "topic");
  return 1;
}

// Pushes `m` in `form` and frees it; returns the number of values pushed.
// `topic_at` is a stack index holding the topic as a Lua string already (the
// receive filter), or 0. Only Lua memory errors can raise here; the process
// then frees `m` at exit through `in_flight`.
int push_received(lua_State* L, message* m, int topic_at, receive_form form) {
  process* self = process::of(L);
  self->in_flight = m;
  // The cache of received strings is made at the second message taken, not
  // the first: a process that takes one message and ends (a worker answering
  // once) would pay more for making it than it could save.
  runtime::string_cache* strings = self->received_strings();
  if (!strings && self->mailbox().taken() > 1)
    strings = &runtime::string_cache::of(L, self->received_strings());
  if (topic_at) {
    lua_pushvalue(L, topic_at);  // already a Lua string: no need to intern it again
  } else {
    std::string_view topic = m->topic();
    runtime::push_received_string(L, strings, topic.data(), topic.size());
  }
  runtime::push_message(L, m->body(), strings);
  // recv answers nil for a message from outside any process (luad send);
  // receive's msg.from has always been the empty pid there.
  if (m->from || form == receive_form::table)
    push_pid(L, m->from);
  else
    lua_pushnil(L);
  self->in_flight = nullptr;
  message::destroy(m);
  return shape_received(L, form);
}

struct topic_filter {
  std::array<std::string_view, k_max_topics> items{};
  std::size_t count = 0;
  std::span<const std::string_view> span() const { return {items.data(), count}; }
};

// Reads receive's first argument: nil (any topic), a topic, or a list of topics.
// The views point into Lua strings that stay on the caller's stack. Returns
// the argument's stack index when it is one topic (a Lua string already, for
// push_received), else 0.
int check_topics(lua_State* L, topic_filter& f) {
  int t = lua_type(L, 1);
  if (t == LUA_TNONE || t == LUA_TNIL) return 0;
  std::size_t len;
  if (t == LUA_TSTRING) {
    const char* s = lua_tolstring(L, 1, &len);
    f.items[f.count++] = std::string_view(s, len);
    return 1;
  }
  luaL_argexpected(L, t == LUA_TTABLE, 1, "topic or list of topics");
  auto n = static_cast<std::size_t>(lua_rawlen(L, 1));
  luaL_argcheck(L, n <= k_max_topics, 1, "at most 16 topics");
  for (std::size_t i = 1; i <= n; ++i) {
    lua_rawgeti(L, 1, static_cast<lua_Integer>(i));
    luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "topics must be strings");
    const char* s = lua_tolstring(L, -1, &len);
    f.items[f.count++] = std::string_view(s, len);
    lua_pop(L, 1);  // still referenced by the table
  }
  return 0;
}

int push_timeout(lua_State* L) {
  return fail(L, error_kind::timeout, "no matching message before the timeout");
}

// A waiting receive. Its topics are read again from argument 1, which stays on
// the suspended frame's stack, so an idle receiver holds only these few bytes.
// Its command is the timeout's clock.sleep, sent only when there is a timeout
// (has_command); a message ends the wait without any command.
class receive_yield final
    : public runtime::pooled_yield<receive_yield, runtime::command_id::clock_sleep> {
 public:
  static constexpr const char* type_name = "process.receive";
  double timeout = -1;  // < 0: forever
  bool waited = false;  // the wait (and its timer) is already open
  receive_form form = receive_form::table;

  bool has_command() const override { return timeout > 0 && !waited; }
  bool wants_messages() const override { return true; }
  bool continues_wait() const override { return waited; }
  runtime::value args() const { return runtime::value(timeout); }
  int handle_result(lua_State* L, const runtime::value& v, const runtime::error* err) override {
    topic_filter topics;
    int topic_at = check_topics(L, topics);  // checked once already: cannot raise now
    if (message* m = process::of(L)->mailbox().take(topics.span()))
      return push_received(L, m, topic_at, form);
    if (err) {
      lua_pushnil(L);
      runtime::push_error(L, *err);
      return 2;
    }
    if (v.is_nil()) return push_timeout(L);  // the timer won
    waited = true;                           // a message we did not ask for: wait on
    lua_pushlightuserdata(L, static_cast<runtime::yield_object*>(this));
    return -1;
  }
};

}  // namespace

const runtime::yield_type* receive_yield_type() { return receive_yield::type(); }

namespace {

// A receive in a durable run: messages sent to the run go to its journal's
// inbox (dispatcher/durable.cpp), not to the mailbox, and a receive is a
// command, {kind = "receive", topics, timeout}, answered with the message it
// took, {seq, from, topic, payload}, or nil for a timeout: a replay answers it
// from the journal, so the run receives each message once, across crashes.
class durable_receive_yield final
    : public runtime::pooled_yield<durable_receive_yield, runtime::command_id::workflow_value> {
 public:
  static constexpr const char* type_name = "process.receive (durable)";
  runtime::value::array topics;
  double timeout = -1;  // < 0: forever
  receive_form form = receive_form::table;

  runtime::value args() {
    return runtime::value(runtime::value::map{
        {"kind", "receive"}, {"topics", std::move(topics)}, {"timeout", timeout}});
  }
  int handle_result(lua_State* L, const runtime::value& v, const runtime::error* err) override {
    if (err) {
      lua_pushnil(L);
      runtime::push_error(L, *err);
      return 2;
    }
    if (v.is_nil()) return push_timeout(L);
    const runtime::value* topic = v.find("topic");
    const runtime::value* from = v.find("from");
    const runtime::value* payload = v.find("payload");
    const std::string* t = topic ? topic->get<std::string>() : nullptr;
    const std::string* f = from ? from->get<std::string>() : nullptr;
    const std::string* p = payload ? payload->get<std::string>() : nullptr;
    if (!t || !f || !p || !runtime::valid_message(*p))
      return fail(L, error_kind::internal, "process.receive: the recorded message cannot be read");
    lua_pushlstring(L, t->data(), t->size());
    runtime::push_message(L, *p);
    if (auto sender = pid::parse(*f))
      push_pid(L, *sender);
    else
      lua_pushnil(L);
    return shape_received(L, form);
  }
};

}  // namespace

const runtime::yield_type* durable_receive_yield_type() { return durable_receive_yield::type(); }

namespace {

// process.receive in a durable run (see durable_receive_yield).
int durable_receive(lua_State* L, const topic_filter& topics, double timeout, receive_form form) {
  durable_receive_yield* y = durable_receive_yield::acquire(L);
  y->form = form;
  try {
    for (std::string_view t : topics.span()) y->topics.emplace_back(std::string(t));
  } catch (const std::bad_alloc&) {
    lua_pop(L, 1);
    y->release();
    return luaL_error(L, "not enough memory");
  }
  y->timeout = timeout;
  return -1;
}

}  // namespace

namespace {

// process.receive and process.recv: the same selective receive, two forms.
int receive_in(lua_State* L, receive_form form) {
  topic_filter topics;
  int topic_at = check_topics(L, topics);
  double timeout = -1;
  if (!lua_isnoneornil(L, 2)) {
    lua_Number t = luaL_checknumber(L, 2);
    luaL_argcheck(L, t >= 0 && !std::isnan(t), 2, "non-negative number of seconds expected");
    timeout = static_cast<double>(t);
  }
  if (process::of(L)->durable()) return durable_receive(L, topics, timeout, form);
  if (message* m = process::of(L)->mailbox().take(topics.span()))
    return push_received(L, m, topic_at, form);
  if (timeout == 0) return push_timeout(L);
  receive_yield* y = receive_yield::acquire(L);
  y->timeout = timeout;
  y->form = form;
  return -1;
}

}  // namespace

int process_receive(lua_State* L) { return receive_in(L, receive_form::table); }

int process_recv(lua_State* L) { return receive_in(L, receive_form::values); }

// process.cancel(pid, reason): sends a CANCEL message {reason} the process may
// handle (for example by cleaning up and exiting), unlike kill.
int process_cancel(lua_State* L) {
  luaL_checkany(L, 1);
  luaL_optstring(L, 2, "canceled");
  lua_settop(L, 2);
  if (lua_isnil(L, 2))
    lua_pushliteral(L, "canceled");
  else
    lua_pushvalue(L, 2);
  lua_createtable(L, 0, 1);
  lua_insert(L, -2);
  lua_setfield(L, -2, "reason");  // stack: pid, reason, {reason}
  lua_pushliteral(L, "CANCEL");
  lua_replace(L, 2);  // stack: pid, "CANCEL", {reason}
  return process_send(L);
}

}  // namespace luad::modules::process_parts
