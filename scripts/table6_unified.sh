#!/usr/bin/env bash
# meProp Table 6: unified top-k (one index set per mini-batch) with mini-batch 50 (MNIST-MLP, Adam):
# 2 layers with k = 30, 5 layers with k = 50; the overall backprop time and the test score.
# Expected wall time on a 2-core CPU, 1 thread: about 40 min with one seed (batch 50 makes 5x fewer
# updates per epoch); 2 h with SEEDS=1,2,3; --quick: about 2 min.
DEFAULT_SEEDS=1
source "$(dirname "$0")/common.sh"
sweep unified2_mnist_mlp experiment=table6_unified_2layers method=baseline,meprop_unified
sweep unified5_mnist_mlp experiment=table6_unified_5layers method=baseline,meprop_unified
table unified table6_unified.md unified2_mnist_mlp unified5_mnist_mlp
