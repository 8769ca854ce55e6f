#!/usr/bin/env bash
# meProp Table 1: baseline vs meProp (Adam and AdaGrad): Iter, backprop time (speedup), dev, test.
# Expected wall time on a 2-core CPU, one run at a time, 1 thread: MNIST-MLP about 2.5 h with 3 seeds
# (a 20-epoch run takes about 11 min for the baseline and 14 min for meProp k=20 on an idle core); about
# 50 min with SEEDS=1. --quick: about 2 min.
# TASKS="mnist_mlp pos parse" adds POS tagging (k 5) and parsing (k 20). Each (task, optimizer) is the preset
# experiment=table1_TASK_OPTIMIZER (conf/experiment/). TASKS=pos --quick: 5 min 49 s with two
# other runs on the cores; a full POS run took 15-17 min (12-15 epochs of about 70 s, measured with other jobs
# running), a parsing run at the default batch of 10,000 about 45 s per epoch. TASKS=parse --quick is slow (300
# updates of 10,000 examples: about 5 min per run, estimated from about 1 s per update; not run).
DEFAULT_SEEDS=1,2,3
source "$(dirname "$0")/common.sh"
names=()
for task in ${TASKS:-mnist_mlp}; do
  for optim in adam adagrad; do
    sweep "main_${task}_${optim}" "experiment=table1_${task}_${optim}" method=baseline,meprop
    names+=("main_${task}_${optim}")
  done
done
table main table1_main.md "${names[@]}"
