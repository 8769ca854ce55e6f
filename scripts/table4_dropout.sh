#!/usr/bin/env bash
# meProp Table 4: meProp with dropout vs dropout alone (MNIST-MLP, Adam, dropout 0.2, k = 25).
# Expected wall time on a 2-core CPU, 1 thread: about 75 min with 3 seeds; --quick: about 1 min.
DEFAULT_SEEDS=1,2,3
source "$(dirname "$0")/common.sh"
sweep dropout_mnist_mlp experiment=table4_dropout method=baseline,meprop
table dropout table4_dropout.md dropout_mnist_mlp
