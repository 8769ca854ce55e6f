#!/usr/bin/env bash
# meProp Table 5: 2 to 5 hidden layers of 500 (MNIST-MLP, Adam, k = 25, dropout 0.1).
# Expected wall time on a 2-core CPU, 1 thread: about 2.5 h with one seed (each extra layer adds about
# 25 % to a run); 7.5 h with SEEDS=1,2,3; --quick: about 3 min.
DEFAULT_SEEDS=1
source "$(dirname "$0")/common.sh"
sweep layers_mnist_mlp experiment=table5_layers method=baseline,meprop \
  'task.hidden=[500,500],[500,500,500],[500,500,500,500],[500,500,500,500,500]'
table layers table5_layers.md layers_mnist_mlp
