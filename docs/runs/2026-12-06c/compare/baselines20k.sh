#!/bin/bash
# Baseline / Baseline++ Omniglot 5w1s pre-trained 20000 mini-batches (resuming the 2000-batch runs, copied)
cd /work/runs/snap-360b9ab && . .venv/bin/activate
while pgrep -f compare2k.sh >/dev/null; do sleep 20; done
D=/work/shared/data/omniglot
L=/work/main/logs/compare20k
mkdir -p $L
for m in baseline baseline_pp; do
  [ -d $L/cls_5.mbs_25.ubs_1.numstep1.updatelr0.001batchnorm.$m ] || cp -a /work/main/logs/compare2k/cls_5.mbs_25.ubs_1.numstep1.updatelr0.001batchnorm.$m $L/
  BASE="--datasource=omniglot --num_classes=5 --update_batch_size=1 --seed=0 --metatrain_iterations=20000 --data_dir=$D --logdir=$L --method=$m"
  echo "=== $m train $(date -Is) $(git rev-parse --short HEAD)"; python main.py $BASE > $L.$m.train.log 2>&1; echo "rc $?"
  echo "=== $m test $(date -Is)"; python main.py $BASE --train=False --test_set=True > $L.$m.test.log 2>&1; echo "rc $? $(date -Is)"
done
