#!/usr/bin/env bash
# meProp Fig. 4 (right): meProp at ratio k/h vs a small network with h' = k trained normally, at h'/h
# (MNIST-MLP, Adam, k = h' = 5 ... 160).
# Expected wall time on a 2-core CPU, 1 thread: about 40 min with one seed for the small networks, plus
# fig4_ratio.sh's runs (reused if it, or table1_main.sh, ran); --quick: about 2 min.
DEFAULT_SEEDS=1
source "$(dirname "$0")/common.sh"
mnist_ratio_sweeps
sweep small_mnist_mlp experiment=table1_mnist_mlp_adam method=small topk=5,10,20,40,80,160
plot small fig4_small.png main_mnist_mlp_adam ratio_mnist_mlp small_mnist_mlp
echo "figure: $OUT/fig4_small.png"
