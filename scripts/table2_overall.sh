#!/usr/bin/env bash
# meProp Table 2: overall forward, backward (speedup) and total time of training, Adam. Uses the same runs as
# table1_main.sh (reused if that script ran first).
# Expected wall time on a 2-core CPU, 1 thread: MNIST-MLP about 75 min with 3 seeds (0 if table1_main.sh
# ran); --quick: about 1 min. TASKS="mnist_mlp pos parse" as in table1_main.sh (pos, parse UNTESTED).
DEFAULT_SEEDS=1,2,3
source "$(dirname "$0")/common.sh"
names=()
for task in ${TASKS:-mnist_mlp}; do
  sweep "main_${task}_adam" "experiment=table1_${task}_adam" method=baseline,meprop
  names+=("main_${task}_adam")
done
table overall table2_overall.md "${names[@]}"
