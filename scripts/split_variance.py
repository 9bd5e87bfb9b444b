#!/usr/bin/env python3
"""How much Omniglot test accuracy depends on which characters the split puts in the test set.

    python scripts/split_variance.py --split_seeds 2 3 --seed 0 --iterations 2000 --data_dir DIR --logdir_root logs/split

The original shuffles `os.listdir` order with `random.seed(1)`; the listing order differs between
file systems, so the original's 1100 / 100 / 423 split on another machine is another random split of
the characters, and its test set other characters (the port lists them sorted, docs/DATA.md). This
trains and tests main.py's Omniglot 5-way 1-shot (the settings of ../shared/golden/tf1/omniglot_training.md)
with the characters shuffled by `random.Random(split_seed)` instead of `random.Random(1)`, one run per
split seed, in `<logdir_root>/split<k>/`, and prints the test accuracy after 1 and 10 steps. Split seed 1
is main.py's own split. A diagnostic, not a product flag: it sets data_generator.OMNIGLOT_SPLIT_SEED.
"""
import argparse
import csv
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--split_seeds', type=int, nargs='+', required=True)
    p.add_argument('--seed', type=int, default=0, help='main.py --seed (initial weights and task stream)')
    p.add_argument('--iterations', type=int, default=2000)
    p.add_argument('--data_dir', default='')
    p.add_argument('--logdir_root', default=os.path.join('logs', 'split_variance'))
    args = p.parse_args(argv)
    import data_generator
    import main as main_lib
    from config import Config
    main_lib.import_tensorflow()
    for split in args.split_seeds:
        data_generator.OMNIGLOT_SPLIT_SEED = split
        logdir = os.path.join(args.logdir_root, f'split{split}')
        base = Config(datasource='omniglot', num_classes=5, metatrain_iterations=args.iterations, meta_batch_size=32,
                      update_lr=0.4, num_updates=1, update_batch_size=1, seed=args.seed, data_dir=args.data_dir,
                      logdir=logdir)
        main_lib.run(base)
        main_lib.run(base.replace(train=False, test_set=True))
        path = glob.glob(os.path.join(logdir, '*', 'test_ubs1_stepsize0.4.csv'))[0]
        with open(path) as f:
            means = [float(v) for v in list(csv.reader(f))[1]]
        print(f'[split_variance] split seed {split}, seed {args.seed}, {args.iterations} iterations: test accuracy '
              f'{100 * means[1]:.2f} % after 1 step, {100 * means[10]:.2f} % after 10 ({path})', flush=True)


if __name__ == '__main__':
    main()
