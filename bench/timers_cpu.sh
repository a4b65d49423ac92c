#!/usr/bin/env bash
# CPU time per timer event, warm against cold: luad_bench's timers and the
# Erlang peer's timers.escript, each run twice per size with K_HI and K_LO
# sleeps per process, so that start-up, spawning and the warm-up cancel out:
#   cpu per event = (cpu(K_HI) - cpu(K_LO)) / (2 * N * (K_HI - K_LO))
# (both programs run the plain and the gated figure, hence 2 * N). A small N
# keeps every process in cache; 100k processes do not fit. BEAM runs with its
# schedulers' busy waits off (+sbwt none), which would otherwise bill idle
# spinning to the sleep-bound small runs.
#   usage: bench/timers_cpu.sh path/to/luad_bench
# Prints `timers_cpu_<who>_<N> <ns> ns/event` lines.
set -u
BENCH=${1:?usage: timers_cpu.sh path/to/luad_bench}
PEER_DIR=${ERLANG_PEER_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/shared/peers/erlang}

measure() {  # measure WHO N K -> cpu seconds
  local who=$1 n=$2 k=$3 out
  out=$(mktemp)
  if [ "$who" = luad ]; then
    /usr/bin/time -o "$out" -f '%U %S' "$BENCH" --only timers --timers "$n" --timer-rounds "$k" \
      > /dev/null 2>&1
  else
    (cd "$PEER_DIR" && ERL_FLAGS="+sbwt none +sbwtdcpu none +sbwtdio none" \
      /usr/bin/time -o "$out" -f '%U %S' escript timers.escript "$n" "$k" 1 > /dev/null 2>&1)
  fi
  awk '{ print $1 + $2 }' "$out"
  rm -f "$out"
}

for n in ${SIZES:-1000 100000}; do
  if [ "$n" -le 10000 ]; then hi=${K_HI_SMALL:-300}; lo=${K_LO_SMALL:-100}
  else hi=${K_HI_LARGE:-20}; lo=${K_LO_LARGE:-5}; fi
  for who in luad erlang; do
    if [ "$who" = erlang ] && ! command -v escript > /dev/null; then continue; fi
    c_hi=$(measure "$who" "$n" "$hi")
    c_lo=$(measure "$who" "$n" "$lo")
    awk -v w="$who" -v n="$n" -v a="$c_hi" -v b="$c_lo" -v h="$hi" -v l="$lo" \
      'BEGIN { printf "timers_cpu_%s_%d %.0f ns/event\n", w, n, (a - b) * 1e9 / (2 * n * (h - l)) }'
  done
done
