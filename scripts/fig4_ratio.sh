#!/usr/bin/env bash
# meProp Fig. 4 (left): test accuracy vs backprop ratio k/h for meProp, the baseline as a line
# (MNIST-MLP, Adam, h = 500, k = 5 ... 160, i.e. 1 % to 32 %).
# Expected wall time on a 2-core CPU, 1 thread: about 1.5 h with one seed (6 meProp runs + the baseline);
# --quick: about 2 min.
DEFAULT_SEEDS=1
source "$(dirname "$0")/common.sh"
mnist_ratio_sweeps
plot ratio fig4_ratio.png main_mnist_mlp_adam ratio_mnist_mlp
"$MEPROP" table "$OUT/sweeps/main_mnist_mlp_adam" "$OUT/sweeps/ratio_mnist_mlp" --kind main --out "$OUT/fig4_ratio.md"
echo "figure: $OUT/fig4_ratio.png, numbers: $OUT/fig4_ratio.md"
