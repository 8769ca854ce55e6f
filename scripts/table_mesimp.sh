#!/usr/bin/env bash
# meSimp table and figure: model simplification from the top-k record (MNIST-MLP, Adam, h = 500, k = 160,
# prune rate 0.1), the final per-layer sizes and % of the original, and baselines trained from scratch at
# the simplified sizes; the figure shows the layer sizes over training.
# UNTESTED: method=mesimp was not on main when this was written; its options are MESIMP_ARGS (default
# "method=mesimp topk=160") and it must write the final sizes to result.json (hidden_final, or hidden) and
# the sizes per evaluation to metrics.jsonl (key hidden).
# Expected wall time on a 2-core CPU, 1 thread: about 1 h with one seed; --quick: about 2 min.
DEFAULT_SEEDS=1
source "$(dirname "$0")/common.sh"
sweep mesimp_mnist_mlp task=mnist_mlp optim=adam ${MESIMP_ARGS:-method=mesimp topk=160}
sweep main_mnist_mlp_adam task=mnist_mlp optim=adam method=baseline,meprop topk=20
# the from-scratch comparison: a baseline with each meSimp run's final sizes
sizes=$(python - "$OUT/sweeps/mesimp_mnist_mlp" <<'PY'
import json, sys
from pathlib import Path
found = set()
for path in Path(sys.argv[1]).rglob("result.json"):
    r = json.loads(path.read_text())
    if r.get("status") == "completed":
        found.add("[" + ",".join(map(str, r.get("hidden_final") or r["hidden"])) + "]")
print(",".join(sorted(found)))
PY
)
if [[ -n "$sizes" ]]; then
  sweep scratch_mnist_mlp task=mnist_mlp optim=adam method=baseline "task.hidden=$sizes"
fi
table mesimp table_mesimp.md mesimp_mnist_mlp main_mnist_mlp_adam $([[ -n "$sizes" ]] && echo scratch_mnist_mlp)
plot mesimp fig_mesimp_sizes.png mesimp_mnist_mlp
