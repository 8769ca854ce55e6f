#!/usr/bin/env bash
# meProp Table 7: the backward of one large linear layer (h = 8192, batch 1024) at k = 8 ... 512, dense vs
# meProp, from scripts/bench_backprop.py's records (JSON lines: batch, in, out, k, mode, dense_ms,
# sparse_ms; see meprop_cli/results.py BENCH_COLUMNS).
# UNTESTED: bench_backprop.py was being written in parallel; its options are passed through BENCH_ARGS
# (default: --out FILE) and may need adjusting. Expected wall time: set by the benchmark (minutes).
DEFAULT_SEEDS=1
source "$(dirname "$0")/common.sh"
mkdir -p "$OUT"
bench="$OUT/bench_backprop.jsonl"
if [[ ! -s "$bench" ]]; then
  extra=()
  [[ $QUICK == 1 ]] && extra=(--quick)
  python "$(dirname "$0")/bench_backprop.py" ${BENCH_ARGS:---out "$bench"} "${extra[@]}"
fi
"$MEPROP" table "$bench" --kind synthetic --out "$OUT/table7_synthetic.md"
cat "$OUT/table7_synthetic.md"
