#!/usr/bin/env bash
# Runs the Erlang peer (../shared/peers/erlang/run.sh beside the repository, or $ERLANG_PEER) and
# luad_bench alternately, PASSES times (default 2), each after the machine has
# been quiet (< 10 % CPU busy) for a second. Raw output goes to $OUT (default
# ./bench-results): erlN.txt / luadN.txt, stdout lines `name value unit`.
# With BENCHES="a b ..." each pass runs `luad_bench --only NAME` for each name
# instead of the whole suite (the flags go to every one). Ends with
# bench/ratios.sh's table: luad ÷ Erlang per pass and the median.
#   usage: bench/compare.sh path/to/luad_bench [luad_bench flags...]
set -u
BENCH=${1:?usage: compare.sh path/to/luad_bench [flags...]}; shift
PEER=${ERLANG_PEER:-$(cd "$(dirname "$0")/../.." && pwd)/shared/peers/erlang/run.sh}
OUT=${OUT:-bench-results}
PASSES=${PASSES:-2}
mkdir -p "$OUT"

# whole-machine CPU busy fraction over 1 s, in percent (as run.sh measures it)
cpu_busy() {
  read -r _ a1 a2 a3 a4 a5 a6 a7 a8 _ < /proc/stat
  sleep 1
  read -r _ b1 b2 b3 b4 b5 b6 b7 b8 _ < /proc/stat
  local busy=$(( (b1+b2+b3+b6+b7+b8) - (a1+a2+a3+a6+a7+a8) ))
  local idle=$(( (b4+b5) - (a4+a5) ))
  echo $(( 100 * busy / (busy + idle + 1) ))
}

wait_idle() {  # up to IDLE_WAIT s (default 120), then warn and go on
  local waited=0 b
  while b=$(cpu_busy); [ "$b" -gt 10 ]; do
    waited=$((waited + 1))
    if [ "$waited" -ge "${IDLE_WAIT:-120}" ]; then
      echo "# WARNING: machine ${b}% busy before $1" >&2
      return
    fi
  done
}

for i in $(seq 1 "$PASSES"); do
  echo "# pass $i: erlang $(date +%T)" >&2
  "$PEER" > "$OUT/erl$i.txt" 2> "$OUT/erl$i.err"
  wait_idle "luad_bench pass $i"
  echo "# pass $i: luad $(date +%T)" >&2
  if [ -n "${BENCHES:-}" ]; then
    : > "$OUT/luad$i.txt"; : > "$OUT/luad$i.err"
    for b in $BENCHES; do
      "$BENCH" --only "$b" "$@" >> "$OUT/luad$i.txt" 2>> "$OUT/luad$i.err"
    done
  else
    "$BENCH" "$@" > "$OUT/luad$i.txt" 2> "$OUT/luad$i.err"
  fi
done
for f in "$OUT"/luad*.txt "$OUT"/erl*.txt; do echo "## $f"; cat "$f"; done
# luad ÷ Erlang per pass and their medians (the figures issue 15 sets targets on)
echo "## ratios"
bash "$(dirname "$0")/ratios.sh" "$OUT"
