#!/usr/bin/env python3
"""How far apart two Omniglot MAML trainings drift that differ only in summation order (issue 16).

    python scripts/replica_drift.py --data_dir DIR [--iterations 40] [--filters 32] [--meta_batch_size 8]

Trains the same seeded learner (5-way 1-shot, 1 inner step, update_lr 0.4, batch norm) on the same pre-drawn
Omniglot meta-batches several times, each variant against `one device, XLA` of the same precision:

    mirrored       --cpu_devices=2 --distribute=mirrored (the meta-batch split over two replicas)
    no XLA         the same step as a tf.function without XLA (other kernels, other summation order)
    1 task group   one device, XLA, the meta-batch as one group instead of the default (a different reduction)
    float64        the same three pairs in float64

and prints, after 1, 2, 5, 10, 20, ... iterations, max |difference| / max |reference| over the kernels (conv1-4,
w5), the output bias b5, and the pre-batch-norm biases b1-b4 (whose true meta-gradient is 0). If the float32
pairs drift alike whatever changes the order, and float64 drifts by the same factor from a ~1e9 times smaller
start, the drift is the training's amplification of rounding differences, not something a replica does.
"""
import argparse
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

KERNELS = ('conv1', 'conv2', 'conv3', 'conv4', 'w5')
PRE_BN = ('b1', 'b2', 'b3', 'b4')
CHECKPOINTS = (1, 2, 5, 10, 20, 40, 80, 160, 320)   # iterations after which the weights are compared


def rel_drift(a, b, names):
    """max over `names` of max |a - b| / max |a| (weights dicts of numpy arrays)."""
    return max(float(np.max(np.abs(a[k] - b[k])) / max(np.max(np.abs(a[k])), 1e-30)) for k in names)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--data_dir', required=True)
    p.add_argument('--iterations', type=int, default=40)
    p.add_argument('--filters', type=int, default=32)
    p.add_argument('--meta_batch_size', type=int, default=8)
    args = p.parse_args(argv)
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    from infra import distribute
    distribute.split_cpu(2)
    import tensorflow as tf
    import data_generator as data_lib
    from config import Config, test_num_updates
    from main import _split
    from maml import MAML

    config = Config(datasource='omniglot', num_classes=5, update_batch_size=1, num_updates=1, update_lr=0.4,
                    meta_batch_size=args.meta_batch_size, num_filters=args.filters, seed=0, data_dir=args.data_dir)
    dg = data_lib.DataGenerator(data_lib.num_samples_per_class(config), config.meta_batch_size, config)
    stream = iter(dg.make_data_tensor(train=True))
    batches = [[np.asarray(x) for x in _split(*next(stream), 5)] for _ in range(args.iterations)]

    def train(dtype=tf.float32, **changes):
        """Weights {name: array} after 1, 2, 5, 10, ... iterations of the variant `changes`."""
        cfg = config.replace(**{k: v for k, v in changes.items() if k != 'task_groups'})
        strategy = distribute.make_strategy(cfg) if cfg.distribute != 'none' else None
        with distribute.scope(strategy):
            model = MAML(dg.dim_input, dg.dim_output, test_num_updates(cfg), cfg, dtype=dtype,
                         task_groups=changes.get('task_groups'))
        if strategy:
            model = distribute.distribute_learner(model, strategy)
        snapshots = {}
        for i, batch in enumerate(batches, 1):
            model.metatrain_step(*[tf.constant(x, dtype) for x in batch])
            if i in CHECKPOINTS or i == len(batches):
                snapshots[i] = {k: v.numpy().astype(np.float64) for k, v in model.meta_variables.items()}
        return snapshots

    variants = {'mirrored': dict(distribute='mirrored', cpu_devices=2), 'no XLA': dict(xla=False),
                '1 task group': dict(task_groups=1)}
    print('| precision | variant | iteration | kernels conv1-4, w5 | b5 | pre-BN biases b1-b4 |')
    print('|---|---|---|---|---|---|')
    for name, dtype in (('float32', tf.float32), ('float64', tf.float64)):
        reference = train(dtype)
        for variant, changes in variants.items():
            other = train(dtype, **changes)
            for i in sorted(other):
                print(f'| {name} | {variant} | {i} | {rel_drift(reference[i], other[i], KERNELS):.2e} | '
                      f'{rel_drift(reference[i], other[i], ("b5",)):.2e} | '
                      f'{rel_drift(reference[i], other[i], PRE_BN):.2e} |', flush=True)


if __name__ == '__main__':
    main()
