#!/bin/bash
# Omniglot 5w1s, 2000 iterations, seed 0, in each lower precision (issue 16); float32 = the MAML run of the
# side-by-side table (logs/omniglot_5w1s/seed0, 85.83 %). First run (snapshot c89113e): bfloat16, then float16 with
# the default --loss_scale=128 (diverged at iteration 0: docs/runs/2026-12-06d/float16_scale128.train.log).
# Second run (snapshot 9cf1a4b): float16 with --loss_scale=1.
set -e
cd /work/runs/snap-9cf1a4b && . .venv/bin/activate
for p in float16; do   # first run: for p in bfloat16 float16, without --loss_scale
  common="--datasource=omniglot --num_classes=5 --metatrain_iterations=2000 --meta_batch_size=32 --update_lr=0.4 --num_updates=1 --update_batch_size=1 --seed=0 --data_dir=/work/shared/data/omniglot --logdir=/work/main/logs/prec2k/$p --precision=$p --loss_scale=1"
  python main.py $common >> /work/main/logs/prec2k/$p.train.log 2>&1
  python main.py $common --train=False --test_set=True >> /work/main/logs/prec2k/$p.test.log 2>&1
done
