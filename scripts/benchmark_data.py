#!/usr/bin/env python3
"""Speed of the data pipelines alone: tasks/s and meta-batches/s of DataGenerator.make_data_tensor.

    python scripts/benchmark_data.py [--omniglot_dir DIR] [--mini_dir DIR] [--json FILE] [--markdown FILE]

Settings (as the original trains them): Omniglot 5-way 1-shot, meta-batch 32 (S = 2 images per
class); MiniImagenet 5-way 1-shot, meta-batch 4 (S = 1 + 15). Both the training stream and the
fixed evaluation tasks are timed. Without --mini_dir a fake MiniImagenet tree of real 84x84 JPEGs
is made in a temporary folder. Each pipeline is warmed up, then `--batches` meta-batches are pulled
`--repeats` times; the median rate is reported. `--json -` / `--markdown -` write to stdout.
`--modes` also times the data modes of the other learners on Omniglot: the 60-way 5-shot + 5-query
meta-train episodes of ProtoNets (`train_classes=60`, B=1) and the non-episodic mini-batches of
Baseline / Baseline++ (`make_class_batches(64)`; "meta-batch" = 64 images, "tasks/s" = images/s).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def default_omniglot_dir():
    shared = os.environ.get('MAML_SHARED', os.path.join(os.path.dirname(REPO), 'shared'))
    for d in (os.path.join(shared, 'data', 'omniglot'), os.path.join('data', 'omniglot')):
        if os.path.isdir(d):
            return d
    return ''


def fake_miniimagenet(root, classes, per_class):
    """train/ and val/ with `classes` folders of `per_class` 84x84 JPEGs (smooth colour + texture)."""
    import numpy as np
    from PIL import Image
    rng = np.random.RandomState(0)
    yy, xx = np.mgrid[0:84, 0:84] / 84.0
    for split in ('train', 'val'):
        for c in range(classes):
            d = os.path.join(root, split, f'n{split[0]}{c:07d}')
            os.makedirs(d, exist_ok=True)
            for i in range(per_class):
                base = rng.rand(3) * 255 * np.stack([xx, yy, 1 - xx], -1) + rng.rand(84, 84, 3) * 60
                Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(
                    os.path.join(d, f'n{c:07d}{i:08d}.jpg'), format='JPEG')
    return root


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def time_pipeline(ds, batch_size, batches, repeats, warmup):
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            images, _labels = next(it)
        rates.append(batches / (time.perf_counter() - start))
    med = statistics.median(rates)
    return {'meta_batches_per_s': med, 'tasks_per_s': med * batch_size,
            'runs_meta_batches_per_s': rates, 'shape': list(images.shape)}


def time_modes(args, Config, DataGenerator):
    """Rates of the ProtoNets 60-way training episodes and of the Baseline class batches (Omniglot)."""
    cfg = Config(datasource='omniglot', num_classes=5, update_batch_size=5, meta_batch_size=1,
                 data_dir=args.omniglot_dir, seed=0, train_classes=60)
    dg = DataGenerator(20, 1, cfg, train_samples_per_class=10)
    out = []
    for name, ds, batch, s in (('omniglot 60-way 5+5 (protonet)', dg.make_data_tensor(train=True), 1, 10),
                               ('omniglot class batches (baseline)', dg.make_class_batches(64), 64, 1)):
        r = time_pipeline(ds, batch, args.batches, args.repeats, args.warmup)
        r.update(setting=name, stream='train', meta_batch=batch, samples_per_class=s, init_s=0.0,
                 data_dir=cfg.data_dir)
        out.append(r)
        print(f'{name:27s} train B={batch:<3d} {r["meta_batches_per_s"]:8.1f} batches/s '
              f'{r["tasks_per_s"]:9.1f} tasks (images)/s', file=sys.stderr)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--omniglot_dir', default=default_omniglot_dir(), help='Omniglot data (zips or resized tree)')
    p.add_argument('--mini_dir', default='', help='MiniImagenet data; default: a fake tree in a temp folder')
    p.add_argument('--mini_classes', type=int, default=20, help='classes per split of the fake tree')
    p.add_argument('--mini_images', type=int, default=40, help='images per class of the fake tree')
    p.add_argument('--only', choices=('omniglot', 'miniimagenet'), help='time one datasource only')
    p.add_argument('--batches', type=int, default=50, help='meta-batches per timed run')
    p.add_argument('--repeats', type=int, default=5, help='timed runs (the median is reported)')
    p.add_argument('--warmup', type=int, default=10, help='meta-batches pulled before timing')
    p.add_argument('--modes', action='store_true', help='also time the 60-way episodes and the class batches')
    p.add_argument('--json', help='write the results as JSON to this file (- for stdout)')
    p.add_argument('--markdown', help='write a Markdown table to this file (- for stdout)')
    args = p.parse_args(argv)

    import tensorflow as tf
    from config import Config
    from data_generator import DataGenerator, num_samples_per_class

    settings = []
    if args.only in (None, 'omniglot'):
        settings.append(('omniglot 5-way 1-shot', Config(datasource='omniglot', num_classes=5, update_batch_size=1,
                                                         meta_batch_size=32, data_dir=args.omniglot_dir, seed=0)))
    tmp = None
    if args.only in (None, 'miniimagenet'):
        mini_dir = args.mini_dir
        if not mini_dir:
            tmp = tempfile.TemporaryDirectory(prefix='maml_mini_bench_')
            t = time.perf_counter()
            mini_dir = fake_miniimagenet(tmp.name, args.mini_classes, args.mini_images)
            print(f'fake MiniImagenet: {args.mini_classes} classes x {args.mini_images} JPEGs per split '
                  f'in {time.perf_counter() - t:.1f} s', file=sys.stderr)
        settings.append(('miniimagenet 5-way 1-shot', Config(datasource='miniimagenet', num_classes=5,
                                                             update_batch_size=1, meta_batch_size=4,
                                                             data_dir=mini_dir, seed=0)))
    results = []
    try:
        if args.modes and args.only in (None, 'omniglot'):
            results += time_modes(args, Config, DataGenerator)
        for name, cfg in settings:
            t = time.perf_counter()
            dg = DataGenerator(num_samples_per_class(cfg), cfg.meta_batch_size, cfg)
            init_s = time.perf_counter() - t
            for train in (True, False):
                r = time_pipeline(dg.make_data_tensor(train=train), cfg.meta_batch_size,
                                  args.batches, args.repeats, args.warmup)
                r.update(setting=name, stream='train' if train else 'eval', meta_batch=cfg.meta_batch_size,
                         samples_per_class=dg.num_samples_per_class, init_s=init_s,
                         data_dir=cfg.data_dir if (args.mini_dir or cfg.datasource == 'omniglot') else 'fake tree')
                results.append(r)
                print(f'{name:27s} {r["stream"]:5s} B={r["meta_batch"]:<3d} {r["meta_batches_per_s"]:8.1f} '
                      f'meta-batches/s {r["tasks_per_s"]:9.1f} tasks/s', file=sys.stderr)
    finally:
        if tmp is not None:
            tmp.cleanup()
    machine = {'cpu': cpu_name(), 'cpus': os.cpu_count(), 'python': platform.python_version(),
               'tensorflow': tf.__version__, 'platform': platform.platform()}
    report = {'machine': machine, 'batches': args.batches, 'repeats': args.repeats, 'results': results}
    if args.json:
        text = json.dumps(report, indent=1)
        _write(args.json, text + '\n')
    if args.markdown:
        lines = [f'{machine["cpus"]} x {machine["cpu"]}, TensorFlow {machine["tensorflow"]}; '
                 f'median of {args.repeats} runs of {args.batches} meta-batches', '',
                 '| pipeline | stream | meta-batch | S | meta-batches/s | tasks/s |', '|---|---|---|---|---|---|']
        for r in results:
            lines.append(f'| {r["setting"]} | {r["stream"]} | {r["meta_batch"]} | {r["samples_per_class"]} | '
                         f'{r["meta_batches_per_s"]:.1f} | {r["tasks_per_s"]:.0f} |')
        _write(args.markdown, '\n'.join(lines) + '\n')
    return 0


def _write(path, text):
    if path == '-':
        sys.stdout.write(text)
        return
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix='.bench', suffix='.tmp')
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


if __name__ == '__main__':
    sys.exit(main())
