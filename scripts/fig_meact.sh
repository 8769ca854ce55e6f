#!/usr/bin/env bash
# meAct figure (Sun et al. 2017, "change of accuracy and average update of parameters"): dev accuracy, the mean
# |update| per parameter per iteration and each hidden layer's active fraction over 20 epochs, meAct against the
# baseline. MNIST-MLP 784-500-500-10, Adam, batch 10, the same seed: the lines coincide until meAct starts
# (method.start_epoch, default 6). Extra meAct options via MEACT_ARGS (e.g. "method.threshold=0.002").
# Expected wall time on a 2-core CPU, 1 thread: about 35 min with one seed (each run took 16-17 min on 2026-12-02,
# with another job on the second core; they run one after the other); --quick: about 20 s.
DEFAULT_SEEDS=1
source "$(dirname "$0")/common.sh"
MEACT_QUICK=()
if [[ $QUICK == 1 ]]; then
  SHORT=(trainer.max_epochs=2 trainer.max_steps_per_epoch=300)  # two epochs: meAct acts in the second
  MEACT_QUICK=(method.start_epoch=2)
fi
sweep meact_mnist_mlp experiment=fig_meact method=meact "${MEACT_QUICK[@]}" ${MEACT_ARGS:-}
sweep meact_baseline_mnist_mlp experiment=fig_meact method=baseline
plot meact fig_meact.png meact_mnist_mlp meact_baseline_mnist_mlp
echo "figure: $OUT/fig_meact.png"
