#!/usr/bin/env bash
# Dev accuracy over epochs, baseline vs meProp (MNIST-MLP, Adam and AdaGrad): the runs of table1_main.sh.
# Expected wall time on a 2-core CPU, 1 thread: 0 if table1_main.sh ran, else as table1_main.sh;
# --quick: about 2 min (one point per line).
DEFAULT_SEEDS=1,2,3
source "$(dirname "$0")/common.sh"
sweep main_mnist_mlp_adam experiment=table1_mnist_mlp_adam method=baseline,meprop
sweep main_mnist_mlp_adagrad experiment=table1_mnist_mlp_adagrad method=baseline,meprop
plot curves fig_curves.png main_mnist_mlp_adam main_mnist_mlp_adagrad
echo "figure: $OUT/fig_curves.png"
