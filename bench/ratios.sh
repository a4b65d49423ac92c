#!/usr/bin/env bash
# The issue-15 ratios of a bench/compare.sh run: luad ÷ Erlang for each pass
# that has both sides (DIR/luadN.txt and DIR/erlN.txt), then the median over
# the passes. Lateness is luad's p99 over Erlang's (lower is better: target
# ≤ 1); the CPU rows are luad_bench's own lua5.4 ÷ luad time (target ≥ 0.9);
# the rest are rates (higher is better). On a shared host single passes swing
# by tens of percent, both sides alike, so the median is the figure to read.
#   usage: bench/ratios.sh DIR
set -u
DIR=${1:?usage: ratios.sh DIR}
# figure name, luad's key, Erlang's key ("-" when luad reports the ratio itself)
FIGURES='ping-pong pingpong_1m pingpong_1m
timers timers_100k_x10 timers_100k_x10_rate
timers-gated timers_100k_x10_gated timers_100k_x10_gated_rate
lateness-p99 sleep10ms_late_p99 sleep10ms_late_p99
spawn+exit spawn_exit spawn_exit_100k
spawn-done spawn_done_1m spawn_done_1m
one-way oneway_1m oneway_1m
ring ring_10k_x100 ring_10k_x100
fib32 cpu_fib32_ratio -
tables cpu_tables_ratio -'
passes=()
for f in "$DIR"/luad*.txt; do
  n=${f##*/luad}; n=${n%.txt}
  [ -f "$DIR/erl$n.txt" ] && passes+=("$n")
done
((${#passes[@]})) || { echo "ratios.sh: no pass with both luadN.txt and erlN.txt in $DIR" >&2; exit 2; }
mapfile -t sorted < <(printf '%s\n' "${passes[@]}" | sort -n)
{
  echo "$FIGURES" | sed 's/^/F /'
  for n in "${sorted[@]}"; do
    sed "s/^/L $n /" "$DIR/luad$n.txt"
    sed "s/^/E $n /" "$DIR/erl$n.txt"
  done
} | awk -v npass="${#sorted[@]}" '
  $1 == "F" { name[++nf] = $2; lk[nf] = $3; ek[nf] = $4; next }
  $1 == "L" || $1 == "E" {
    if (!($2 in seen)) { seen[$2] = 1; order[++np] = $2 }
    val[$1, $2, $3] = $4; next
  }
  function median(a, n,  i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    printf "%-14s", "figure"
    for (p = 1; p <= np; p++) printf " %7s", "pass " order[p]
    printf " %7s\n", "median"
    for (f = 1; f <= nf; f++) {
      printf "%-14s", name[f]; k = 0; delete r
      for (p = 1; p <= np; p++) {
        l = val["L", order[p], lk[f]]
        e = ek[f] == "-" ? 1 : val["E", order[p], ek[f]]
        if (l == "" || e == "" || e + 0 == 0) { printf " %7s", "-"; continue }
        r[++k] = l / e; printf " %7.2f", l / e
      }
      if (k) printf " %7.2f\n", median(r, k); else printf " %7s\n", "-"
    }
  }'
