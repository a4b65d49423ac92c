// Values dispatcher: the system clock and a seeded 64-bit generator per thread.
#include "dispatcher/values.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <variant>

namespace luad::dispatcher {

namespace {

// 64 random bits from this thread's Mersenne Twister, seeded once with 256
// bits from std::random_device.
std::uint64_t random_bits() {
  thread_local std::mt19937_64 generator = [] {
    std::random_device device;
    std::array<std::uint32_t, 8> seed{};
    for (auto& s : seed) s = device();
    std::seed_seq seq(seed.begin(), seed.end());
    return std::mt19937_64(seq);
  }();
  return generator();
}

value random_integer() { return {static_cast<std::int64_t>(random_bits())}; }

// Moves out the field `key` of the map `args` (nil when absent).
value take(value& args, std::string_view key) {
  if (auto* m = std::get_if<value::map>(&args.data)) {
    for (auto& [k, v] : *m)
      if (k == key) return std::move(v);
  }
  return {};
}

}  // namespace

void values::submit(command&& cmd, completion&& done) {
  const value* kind = cmd.args.find("kind");
  const std::string* name = kind ? kind->get<std::string>() : nullptr;
  if (name && *name == "now") {
    auto since = std::chrono::system_clock::now().time_since_epoch();
    done.succeed(std::chrono::duration<double>(since).count());
  } else if (name && *name == "monotonic") {
    auto since = std::chrono::steady_clock::now().time_since_epoch();
    done.succeed(std::chrono::duration<double>(since).count());
  } else if (name && *name == "random") {
    done.succeed(random_integer());
  } else if (name && *name == "uuid") {
    done.succeed(value::array{random_integer(), random_integer()});
  } else if (name && *name == "side_effect") {
    done.succeed(take(cmd.args, "value"));
  } else if (name && *name == "continue_as_new") {
    done.fail(error{error_kind::invalid,
                    "workflow.continue_as_new: only a durable run can continue as new",
                    false,
                    {}});
  } else if (name && (*name == "start" || *name == "wait")) {
    done.fail(error{error_kind::invalid,
                    "workflow." + *name +
                        ": children are for durable runs only (process.spawn starts "
                        "a plain child elsewhere)",
                    false,
                    {}});
  } else if (name && *name == "version") {
    // Live (or not durable): the newest version the code knows.
    const value* max = cmd.args.find("max");
    if (max && max->get<std::int64_t>())
      done.succeed(*max);
    else
      done.fail(error{error_kind::invalid, "workflow.version: no integer max", false, {}});
  } else {
    done.fail(error{error_kind::invalid,
                    "workflow.value: kind must be now, monotonic, random, uuid, side_effect, "
                    "version, continue_as_new, "
                    "start or wait",
                    false,
                    {}});
  }
}

}  // namespace luad::dispatcher
