#!/usr/bin/env bash
# meProp-CNN table: top-k per feature map at 5/8/10 %, decay 0 and 0.6, with and without batch norm
# (MNIST, conv 5x5x32 - pool - conv 5x5x64 - pool - FC 1024 - FC 10, Adam, batch 10).
# UNTESTED: task=mnist_cnn was being built when this was written; its option names are assumed
# (topk_ratio, decay, task.batch_norm) and can be replaced through CNN_ARGS.
# Expected wall time on a 2-core CPU, 1 thread: many hours (a CNN epoch on MNIST is far slower than the
# MLP's); --quick: a few minutes.
DEFAULT_SEEDS=1
source "$(dirname "$0")/common.sh"
for bn in false true; do
  sweep "cnn_bn_$bn" task=mnist_cnn optim=adam method=baseline "task.batch_norm=$bn"
  sweep "cnn_meprop_bn_$bn" task=mnist_cnn optim=adam method=meprop "task.batch_norm=$bn" \
    ${CNN_ARGS:-topk_ratio=0.05,0.08,0.1 decay=0,0.6}
done
table cnn table_cnn.md cnn_bn_false cnn_meprop_bn_false cnn_bn_true cnn_meprop_bn_true
