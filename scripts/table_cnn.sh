#!/usr/bin/env bash
# meProp-CNN table: top-k per feature map at 5/8/10 %, decay 0 and 0.6, with and without batch norm
# (MNIST, conv 5x5x32 - pool - conv 5x5x64 - pool - FC 1024 - FC 10, Adam, batch 10).
# CNN_ARGS replaces the meProp-CNN grid (default "topk_ratio=0.05,0.08,0.1 decay=0,0.6").
# CNN_EPOCHS=N sets the epochs of every run (default: the trainer's 20).
# Expected wall time on a 2-core CPU, 1 thread, one run at a time: a 3-epoch run took 6.7-8.6 min (about
# 2.7 min per epoch plus evaluation, measured with one other job on the second core), so the 14 runs take
# about 2 h with CNN_EPOCHS=3 and about 13 h at 20 epochs (estimated); --quick: 6 min 43 s (measured, with two
# other jobs on the cores).
DEFAULT_SEEDS=1
source "$(dirname "$0")/common.sh"
epochs=()
[[ -n "${CNN_EPOCHS:-}" && $QUICK == 0 ]] && epochs=("trainer.max_epochs=$CNN_EPOCHS")
for bn in false true; do
  sweep "cnn_bn_$bn" experiment=table_cnn method=baseline "task.batch_norm=$bn" "${epochs[@]}"
  sweep "cnn_meprop_bn_$bn" experiment=table_cnn method=meprop_cnn "task.batch_norm=$bn" \
    ${CNN_ARGS:-topk_ratio=0.05,0.08,0.1 decay=0,0.6} "${epochs[@]}"
done
table cnn table_cnn.md cnn_bn_false cnn_meprop_bn_false cnn_bn_true cnn_meprop_bn_true
