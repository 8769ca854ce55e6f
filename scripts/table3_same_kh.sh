#!/usr/bin/env bash
# meProp Table 3: a small network with h = k trained normally vs meProp with that k (Adam, MNIST-MLP: 20).
# Expected wall time on a 2-core CPU, 1 thread: about 1.5 h with 3 seeds (the small h=20 runs take about
# 6 min each; the baseline/meProp runs are table1_main.sh's, reused if it ran); --quick: about 1 min.
DEFAULT_SEEDS=1,2,3
source "$(dirname "$0")/common.sh"
sweep main_mnist_mlp_adam experiment=table1_mnist_mlp_adam method=baseline,meprop
sweep same_kh_mnist_mlp experiment=table1_mnist_mlp_adam method=small
table same_kh table3_same_kh.md main_mnist_mlp_adam same_kh_mnist_mlp
