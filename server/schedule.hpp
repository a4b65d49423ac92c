// Cron schedules of workflows (docs/workflows.md, "Schedules"): the 5-field
// expression of a `schedule` key, its next tick, and the ticks a daemon that
// was down has missed. Every time is UTC; a tick is a whole minute.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/result.hpp"

namespace luad::server {

/// What a daemon that was down does with the ticks it missed.
enum class catchup : std::uint8_t {
  one,   ///< run the latest missed tick only
  all,   ///< run every missed tick, oldest first, up to max_missed_ticks (the latest ones)
  none,  ///< run none of them: wait for the next tick
};

/// "one", "all", "none" → the policy; nullopt for any other text.
std::optional<catchup> catchup_from_name(std::string_view name);

/// The most ticks catchup::all runs after one outage.
inline constexpr std::size_t max_missed_ticks = 1000;

/// A parsed cron expression: `minute hour day-of-month month day-of-week`
/// (`*`, `a`, `a-b`, `*/n`, `a-b/n`, lists `x,y`; jan..dec, sun..sat, 0 and 7
/// both Sunday) or a macro (@hourly, @daily, @midnight, @weekly, @monthly,
/// @yearly, @annually). As in Vixie cron, when both day fields are restricted
/// (neither starts with `*`) a day matches if either matches; otherwise both
/// must. Times are UTC: no time zones, no daylight saving. Immutable, so one
/// schedule may be read from any number of threads.
class schedule {
 public:
  using time_point = std::chrono::system_clock::time_point;

  /// The schedule `text` describes, or an `invalid` error naming the text, the
  /// field and the bad token: `schedule "*/0 * * * *": minute: step 0`.
  /// Expressions no date matches (`0 0 30 2 *`) parse; see fires().
  static runtime::result<schedule> parse(std::string_view text);

  /// The first tick strictly after `t`; nullopt if there is none: the
  /// expression never fires, or the tick is past the clock's range (2262).
  /// Costs at most a step per day, never one per minute.
  std::optional<time_point> next_after(time_point t) const;
  /// The last tick at or before `t`; nullopt if there is none.
  std::optional<time_point> last_at_or_before(time_point t) const;

  /// False for an expression that no date matches (day 30 of February, day
  /// 31 of April): next_after is then always nullopt.
  bool fires() const;

  /// The ticks missed by a daemon that ran its last tick at `from` and is
  /// back at `to`: those in (from, to], oldest first, that `policy` runs.
  /// With next_after(to) for the ticks to come, each tick is counted once.
  struct missed {
    std::vector<time_point> ticks;
    /// catchup::all only: more than max_missed_ticks were missed, and the
    /// oldest of them are not in `ticks`.
    bool capped = false;
  };
  missed ticks_missed(time_point from, time_point to, catchup policy) const;

  /// The text it was parsed from.
  const std::string& text() const { return text_; }

  bool operator==(const schedule&) const = default;

 private:
  schedule() = default;
  bool day_matches(int day_of_month, int weekday) const;
  // The first (forward) or last matching minute since the epoch from `minute` on.
  std::optional<std::int64_t> seek(std::int64_t minute, bool forward) const;

  std::string text_;
  std::uint64_t minutes_ = 0;   // bit m: minute m (0-59)
  std::uint64_t hours_ = 0;     // bit h: hour h (0-23)
  std::uint64_t days_ = 0;      // bit d: day of month d (1-31)
  std::uint64_t months_ = 0;    // bit m: month m (1-12)
  std::uint64_t weekdays_ = 0;  // bit w: weekday w (0 = Sunday .. 6)
  bool dom_star_ = false;       // day-of-month starts with '*'
  bool dow_star_ = false;       // day-of-week starts with '*'
};

}  // namespace luad::server
