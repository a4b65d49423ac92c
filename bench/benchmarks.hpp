// The benchmarks luad_bench runs, one function each. Every one starts its own
// engine, warms up on a small size, and prints its figures with report().
#pragma once

#include "bench/harness.hpp"

namespace luad::bench {

/// spawn_exit: N processes of `return 1`, timed from the first spawn until the
/// last on_exit callback has run.
void bench_spawn_exit(const options& opts);
/// mem_idle_<N>_rss: RSS growth per process with N processes parked in a
/// one-hour sleep.
void bench_mem_idle(const options& opts);
/// yield_roundtrips: many processes looping on time.sleep(0).
void bench_yields(const options& opts);
/// timers_<N>_x10: N processes each sleeping 10 ms ten times.
void bench_timers(const options& opts);

/// fresh_memory_*: GB/s of first touches of fresh pages against a new
/// mapping of pages just freed (bench/fresh_memory.cpp).
void bench_fresh_memory(const options& opts);

/// state_floor_bare / _sandboxed: Lua states made and closed per second on
/// every worker thread, with nothing else (bench/state_floor.cpp).
void bench_state_floor(const options& opts);

/// pingpong_<N>: N round trips between two processes (bench/lua/pingpong.lua).
void bench_pingpong(const options& opts);
/// cpu_loop_<N>: one process running a Lua loop of N iterations (bench/lua/cpu_loop.lua).
void bench_cpu_loop(const options& opts);
/// oneway_<N>: N messages to a counting receiver.
void bench_oneway(const options& opts);
/// ring_<P>_x<R>: a token passed P*R times around a ring of P processes.
void bench_ring(const options& opts);
/// spawn_done_<N>: N spawns from Lua, each child sending "done" to the parent.
void bench_spawn_done(const options& opts);
/// mem_receive_<N>_rss: RSS per process with N processes parked in receive.
void bench_mem_receive(const options& opts);

/// store_acked_<W>x<N>: durable writes/s from W processes writing N keys each,
/// beside a one-transaction-per-write SQLite loop (bench/store.cpp).
void bench_store(const options& opts);
/// journal_appends_<R>x<N> / journal_fused_<R>x<N>: journaled steps/s from R
/// durable runs appending N steps each, one in flight per run, straight on the
/// storage's journal backend; fused = each step a store write applied with its
/// entry in one transaction (bench/journal.cpp).
void bench_journal(const options& opts);
/// plain_steps_<R>x<N> / durable_steps_<R>x<N> / durable_ratio: steps/s from R
/// Lua runs of N store.incr steps each, plain and through the durable sink;
/// replay_<S>_ms: a run of S journaled steps replayed from its journal (bench/durable.cpp).
void bench_durable(const options& opts);

/// daemon_jobs_16conn: `return 1` jobs submitted with wait through the socket
/// by 16 connections, 64 in flight each (bench/daemon.cpp).
void bench_daemon(const options& opts);

/// http_luad / http_wrk / http_ratio: requests/s from 100 processes looping on
/// http.get against a local keep-alive server, and wrk on the same server (bench/http.cpp).
void bench_http(const options& opts);

/// patterns_stock / patterns_bounded / patterns_ratio: string.find, match,
/// gmatch and gsub on ordinary patterns, stock Lua against runtime/bounded_lib
/// (bench/patterns.cpp).
void bench_patterns(const options& opts);

/// cpu_fib32_* / cpu_tables_*: bench/lua/fib.lua and tables.lua run as one
/// luad process and by the stock lua5.4 on the same file, alternating; medians
/// of the wall times and lua/luad ratio (bench/cpu.cpp).
void bench_cpu_peer(const options& opts);
/// sleep10ms_late_p50/p99/max: lateness of one process's 10 ms sleeps in an
/// idle engine (bench/lua/lateness.lua), as the Erlang peer names it (bench/cpu.cpp).
void bench_lateness(const options& opts);

}  // namespace luad::bench
