# Sourced by every table/figure script: options, the sweep runner, output folders. Each paper setting (task,
# optimizer, k, dropout, layers, batch) is a preset of conf/experiment/, named by its table: the scripts pass
# experiment=NAME and the axes they sweep.
#
#   --quick     one seed, 1 epoch of 300 updates per run, into runs/paper-quick (a smoke run of the script)
#   env MEPROP  the CLI to call (default: meprop on PATH; e.g. MEPROP=.venv/bin/meprop)
#   env OUT     output root (default runs/paper, or runs/paper-quick with --quick)
#   env SEEDS   comma-separated seeds (default: the script's DEFAULT_SEEDS; --quick: 1)
#   env THREADS torch threads per run (default 1: the timings of the papers' single-core comparisons)
#   env MEPROP_DATA  the data root (mnist/, ud-english-ewt/)
# A sweep that finished is reused (marker $OUT/sweeps/NAME/.finished): delete its folder to run it again.
# A sweep that did not finish runs again into its folder: its completed jobs are kept, and a job that was
# interrupted (these scripts keep no checkpoint) is refused and listed as failed: delete that job's folder.
set -euo pipefail

MEPROP="${MEPROP:-meprop}"
QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help)  # the script's header comment, then the options above
      for file in "$0" "${BASH_SOURCE[0]}"; do awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$file"; done
      exit 0 ;;
    *) echo "$(basename "$0"): unknown option $arg (use --quick, or none)" >&2; exit 2 ;;
  esac
done
if [[ $QUICK == 1 ]]; then
  OUT="${OUT:-runs/paper-quick}"
  SEEDS="${SEEDS:-1}"
  SHORT=(trainer.max_epochs=1 trainer.max_steps_per_epoch=300)
else
  OUT="${OUT:-runs/paper}"
  SEEDS="${SEEDS:-${DEFAULT_SEEDS:-1,2,3}}"
  SHORT=()
fi
COMMON=("trainer.threads=${THREADS:-1}" trainer.progress=log trainer.log_every_steps=5500 trainer.checkpoint=false
        "seed=$SEEDS")

# sweep NAME OVERRIDE...: one Hydra multirun into $OUT/sweeps/NAME (skipped when it finished before).
# A failed job does not stop the script: the table lists it with its reason.
sweep() {
  local name="$1"; shift
  local dir="$OUT/sweeps/$name"
  if [[ -f "$dir/.finished" ]]; then
    echo "== $name: finished before, reusing $dir"
    return
  fi
  echo "== $name: $MEPROP train -m $* ${COMMON[*]} ${SHORT[*]}"
  local start=$SECONDS
  if "$MEPROP" train -m "$@" "${COMMON[@]}" "${SHORT[@]}" "hydra.sweep.dir=$dir"; then
    touch "$dir/.finished"
  else
    echo "== $name: some jobs failed; the table lists them" >&2
  fi
  echo "== $name: $((SECONDS - start)) s"
}

# of_sweeps COMMAND KIND FILE SWEEP...: `meprop table` or `meprop plot` of those sweeps, written to $OUT/FILE.
of_sweeps() {
  local command="$1" kind="$2" file="$3"; shift 3
  local dirs=()
  for name in "$@"; do dirs+=("$OUT/sweeps/$name"); done
  "$MEPROP" "$command" "${dirs[@]}" --kind "$kind" --out "$OUT/$file"
}

# table KIND FILE SWEEP...: the table of those sweeps, written to $OUT/FILE and shown.
table() {
  of_sweeps table "$@"
  cat "$OUT/$2"
}

# plot KIND FILE SWEEP...: the figure of those sweeps, written to $OUT/FILE.
plot() {
  of_sweeps plot "$@"
}

# mnist_ratio_sweeps: the MNIST-MLP (Adam) baseline and meProp at k = 5 ... 160 that Fig. 4's three panels share.
mnist_ratio_sweeps() {
  sweep main_mnist_mlp_adam experiment=table1_mnist_mlp_adam method=baseline,meprop  # the baseline and k = 20
  sweep ratio_mnist_mlp experiment=table1_mnist_mlp_adam method=meprop topk=5,10,40,80,160
}
