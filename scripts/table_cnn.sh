#!/usr/bin/env bash
# meProp-CNN table: top-k per feature map at 5/8/10 %, decay 0 and 0.6, with and without batch norm
# (MNIST, conv 5x5x32 - pool - conv 5x5x64 - pool - FC 1024 - FC 10, Adam, batch 10).
# CNN_ARGS replaces the meProp-CNN grid (default "topk_ratio=0.05,0.08,0.1 decay=0,0.6").
# Expected wall time on a 2-core CPU, 1 thread: about 23 h for the 14 runs at the default 20 epochs (an
# epoch takes 4-5 min on an idle core); pass e.g. CNN_EPOCHS=3 for about 3.5 h; --quick: 4-7 min (6 min 43 s with two other runs on the cores).
DEFAULT_SEEDS=1
source "$(dirname "$0")/common.sh"
for bn in false true; do
  epochs=()
  [[ -n "${CNN_EPOCHS:-}" && $QUICK == 0 ]] && epochs=("trainer.max_epochs=$CNN_EPOCHS")
  sweep "cnn_bn_$bn" task=mnist_cnn optim=adam method=baseline "task.batch_norm=$bn" "${epochs[@]}"
  sweep "cnn_meprop_bn_$bn" task=mnist_cnn optim=adam method=meprop_cnn "task.batch_norm=$bn" \
    ${CNN_ARGS:-topk_ratio=0.05,0.08,0.1 decay=0,0.6} "${epochs[@]}"
done
table cnn table_cnn.md cnn_bn_false cnn_meprop_bn_false cnn_bn_true cnn_meprop_bn_true
