#!/usr/bin/env bash
# meProp Fig. 4 (middle): top-k vs random-k meProp at each backprop ratio (MNIST-MLP, Adam, k = 5 ... 160).
# Expected wall time on a 2-core CPU, 1 thread: about 1.5 h with one seed for the random runs, plus
# fig4_ratio.sh's runs (reused if it, or table1_main.sh, ran); --quick: about 3 min.
DEFAULT_SEEDS=1
source "$(dirname "$0")/common.sh"
mnist_ratio_sweeps
sweep random_mnist_mlp experiment=table1_mnist_mlp_adam method=random topk=5,10,20,40,80,160
plot random fig4_random.png main_mnist_mlp_adam ratio_mnist_mlp random_mnist_mlp
echo "figure: $OUT/fig4_random.png"
