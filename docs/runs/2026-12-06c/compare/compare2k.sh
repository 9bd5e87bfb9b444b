#!/bin/bash
# Omniglot 5w1s, 2000 iterations, seed 0: the learners not yet run at this budget (issue 15's side-by-side table).
cd /work/runs/snap-360b9ab && . .venv/bin/activate
while pgrep -f "reproduce.py protonet_omniglot_5w1s" >/dev/null; do sleep 30; done
D=/work/shared/data/omniglot
L=/work/main/logs/compare2k
BASE="--datasource=omniglot --num_classes=5 --update_batch_size=1 --seed=0 --metatrain_iterations=2000 --data_dir=$D --logdir=$L"
MAML="--meta_batch_size=32 --update_lr=0.4 --num_updates=1"
run() { name=$1; shift
  echo "=== $name train $(date -Is) $(git rev-parse --short HEAD)"; python main.py $BASE "$@" > $L.$name.train.log 2>&1; echo "rc $?"
  echo "=== $name test $(date -Is)"; python main.py $BASE "$@" --train=False --test_set=True > $L.$name.test.log 2>&1; echo "rc $? $(date -Is)"; }
mkdir -p $L
run fomaml $MAML --stop_grad=True
run baseline --method=baseline
run baseline_pp --method=baseline_pp
# Matching Networks 5-way 1-shot on to reproduce.py's full 20000 episodes (resumes the 2000-episode run, copied)
R=/work/main/logs/metric20k
mkdir -p $R && [ -d $R/matchingnet_omniglot_5w1s ] || cp -a /work/main/logs/metric2k/matchingnet_omniglot_5w1s $R/
echo "=== matchingnet 20000 $(date -Is)"
python scripts/reproduce.py matchingnet_omniglot_5w1s --logdir_root $R --data_dir $D > $R.out 2>&1; echo "rc $? $(date -Is)"
