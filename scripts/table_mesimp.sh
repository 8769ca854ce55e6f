#!/usr/bin/env bash
# meSimp table and figure on the reference code's MNIST setting (lancopku/meSimp: MNIST-MLP, Adam, h = 500,
# batch 100, k = 160, prune rate 0.1): meSimp, meProp and the baseline at the same batch size and k, and for
# each meSimp run that finished, a baseline trained from scratch at its tested sizes (hidden_from=that run,
# with that run's seed). The table (--kind mesimp) shows the sizes per layer, % of the original, test and the
# decode speedup; the figure (--kind mesimp) the layer sizes over training.
# Expected wall time on a 2-core CPU, 1 thread: about 10 min with one seed (four 20-epoch runs of about
# 2 min of training each, measured, plus data loading); --quick: about 2 min.
DEFAULT_SEEDS=1
source "$(dirname "$0")/common.sh"
sweep mesimp_mnist_mlp experiment=table_mesimp method=mesimp
sweep mesimp_mnist_mlp_compared experiment=table_mesimp method=baseline,meprop

# completed_runs SWEEP: "FOLDER SEED" of each completed run of that sweep (result.json status and seed)
completed_runs() {
  "${PYTHON:-python3}" - "$OUT/sweeps/$1" <<'PY'
import json, sys
from pathlib import Path
for path in sorted(Path(sys.argv[1]).rglob("result.json")):
    record = json.loads(path.read_text())
    if record.get("status") == "completed":
        print(record["seed"], path.parent.resolve())
PY
}

# the from-scratch comparison: one baseline per finished meSimp run, built at its tested sizes, with its seed
# (COMMON's seed=$SEEDS is swapped for that seed; the job folder is named by its number, not by the path)
mapfile -t simplified < <(completed_runs mesimp_mnist_mlp)
all_seeds=("${COMMON[@]}")
for entry in "${simplified[@]}"; do
  seed="${entry%% *}" folder="${entry#* }"
  name="$(basename "$folder")"
  COMMON=("${all_seeds[@]/#seed=*/seed=$seed}")
  sweep "mesimp_mnist_mlp_scratch/${name//[^A-Za-z0-9._-]/_}" experiment=table_mesimp method=baseline \
    "hidden_from='$folder'" 'hydra.sweep.subdir=${hydra.job.num}'
done
COMMON=("${all_seeds[@]}")

compared=(mesimp_mnist_mlp mesimp_mnist_mlp_compared)
[[ -d "$OUT/sweeps/mesimp_mnist_mlp_scratch" ]] && compared+=(mesimp_mnist_mlp_scratch)
table mesimp table_mesimp.md "${compared[@]}"
plot mesimp fig_mesimp_sizes.png mesimp_mnist_mlp
