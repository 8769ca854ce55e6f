#!/usr/bin/env bash
# meProp Table 7: the backward of one large linear layer (h = 8192, batch 1024) at k = 8 ... 512, dense vs
# meProp, from scripts/bench_backprop.py's records (JSON lines: batch, in, out, k, mode, dense_ms,
# sparse_ms; see meprop_cli/results.py BENCH_COLUMNS).
# Expected wall time on a 2-core CPU: about 3 min (8192² products, 3 repetitions per k); --quick (1024²): seconds.
#   env PYTHON  the Python that runs the benchmark (default: python; e.g. PYTHON=.venv/bin/python)
#   env BENCH_ARGS  extra options of bench_backprop.py (e.g. "--threads 2 --ks 8 32 128")
DEFAULT_SEEDS=1
source "$(dirname "$0")/common.sh"
mkdir -p "$OUT"
bench="$OUT/bench_backprop.jsonl"
if [[ ! -s "$bench" ]]; then
  extra=()
  [[ $QUICK == 1 ]] && extra=(--quick)
  "${PYTHON:-python}" "$(dirname "$0")/bench_backprop.py" --only "Table 7" --out "$bench" ${BENCH_ARGS:-} "${extra[@]}"
fi
"$MEPROP" table "$bench" --kind synthetic --out "$OUT/table7_synthetic.md"
cat "$OUT/table7_synthetic.md"
