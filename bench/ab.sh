#!/usr/bin/env bash
# A/B run of two luad_bench builds on this machine, alternating A and B for
# each benchmark PASSES times (default 3), so that both see the same noise.
# Prints, per figure, A's and B's values (min..max) and the ratio of medians
# B/A. Raw lines go to $OUT (default ./bench-ab): a_<bench><pass>.txt, b_...
#   usage: bench/ab.sh A/luad_bench B/luad_bench [bench ...]
#   default benches: spawn_exit yield_roundtrips timers pingpong oneway ring
#                    spawn_done mem_receive daemon
set -u
A=${1:?usage: ab.sh A/luad_bench B/luad_bench [bench ...]}
B=${2:?usage: ab.sh A/luad_bench B/luad_bench [bench ...]}
shift 2
BENCHES=("$@")
((${#BENCHES[@]})) || BENCHES=(spawn_exit yield_roundtrips timers pingpong oneway ring spawn_done
                               mem_receive daemon)
OUT=${OUT:-bench-ab}
PASSES=${PASSES:-3}
mkdir -p "$OUT"
for bench in "${BENCHES[@]}"; do
  for i in $(seq 1 "$PASSES"); do
    echo "# $bench pass $i $(date +%T)" >&2
    "$A" --only "$bench" > "$OUT/a_$bench$i.txt" 2> "$OUT/a_$bench$i.err"
    "$B" --only "$bench" > "$OUT/b_$bench$i.txt" 2> "$OUT/b_$bench$i.err"
  done
done
# name value unit lines -> one row per figure: A min..max, B min..max, B/A of medians
awk '
  FNR == 1 { side = FILENAME ~ /(^|\/)a_[^\/]*$/ ? "a" : "b" }
  NF >= 2 && $2 + 0 == $2 { key = $1; unit[key] = $3; n = ++cnt[side, key]; v[side, key, n] = $2 + 0; seen[key] = 1 }
  function median(s, k,  n, i, j, t, a) {
    n = cnt[s, k]; for (i = 1; i <= n; i++) a[i] = v[s, k, i]
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function range(s, k,  n, i, lo, hi) {
    n = cnt[s, k]; lo = hi = v[s, k, 1]
    for (i = 2; i <= n; i++) { if (v[s, k, i] < lo) lo = v[s, k, i]; if (v[s, k, i] > hi) hi = v[s, k, i] }
    return sprintf("%.4g..%.4g", lo, hi)
  }
  END {
    printf "%-28s %-24s %-24s %s\n", "figure", "A (min..max)", "B (min..max)", "B/A (medians)"
    for (k in seen) if (cnt["a", k] && cnt["b", k])
      printf "%-28s %-24s %-24s %.3f %s\n", k, range("a", k), range("b", k),
             median("b", k) / median("a", k), unit[k]
  }' "$OUT"/a_*.txt "$OUT"/b_*.txt | sort
