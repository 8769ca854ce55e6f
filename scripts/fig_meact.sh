#!/usr/bin/env bash
# meAct figure: dev accuracy, active fraction of neurons and mean absolute update over training, meAct vs
# the baseline (MNIST-MLP, Adam, same seed so that the lines coincide until meAct starts).
# UNTESTED: method=meact was not on main when this was written; options via MEACT_ARGS (default
# "method=meact"); it must write active_fraction and update_magnitude to each metrics.jsonl line.
# Expected wall time on a 2-core CPU, 1 thread: about 30 min with one seed; --quick: about 1 min.
DEFAULT_SEEDS=1
source "$(dirname "$0")/common.sh"
sweep meact_mnist_mlp task=mnist_mlp optim=adam ${MEACT_ARGS:-method=meact}
sweep main_mnist_mlp_adam task=mnist_mlp optim=adam method=baseline,meprop topk=20
plot meact fig_meact.png meact_mnist_mlp main_mnist_mlp_adam
echo "figure: $OUT/fig_meact.png"
