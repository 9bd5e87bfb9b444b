#!/usr/bin/env python3
"""Where the XLA meta-train step spends its time, per kind of compiled op, on this machine.

    XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true python scripts/profile_step.py a [--steps 5] [--top 15]
        [--mode xla|xla_loop|tf1] [--steps-per-execution 100] [--task-groups N]

Builds the step of a `scripts/benchmark.py` setting (random inputs, XLA), runs it once to compile
and twice to warm up, then traces `--steps` steps with the TensorFlow profiler and prints, per
step: the wall time of the step, the busy time summed over the runtime's worker threads (their
ratio is how many cores the step keeps busy), and that busy time by op kind (`dot` = the matrix products,
`*_fusion` = XLA's fused elementwise / reduction / slicing kernels, named after their first ops).
Op-level events need the XLA flag above (set it before TensorFlow starts, as shown); without it
only the totals are printed. `--mode xla_loop` profiles `--steps-per-execution` meta-iterations per
compiled call (loop.py) and prints everything per meta-iteration; its wall time is that of the calls.
`--mode tf1` profiles the original's graph rebuilt in tf.compat.v1 (`benchmark.tf1_style_step`): its busy
time is that of TensorFlow's kernels (by op type: `Conv2D`, `Conv2DBackpropInput`, `MaxPoolGrad`, ...), the
wall time that of `Session.run`.

    python scripts/profile_step.py a --first-call [--xla-cache LOGDIR]

`--first-call` instead splits the first call of the XLA step (issue 28): importing TensorFlow, tracing the
Python function (`get_concrete_function`), then the first call (lowering to HLO and XLA's compile, or a load
from TensorFlow's persistent compilation cache), then 3 more steps; wall and process CPU seconds (user + sys, all
threads: what a loaded machine does not change) of each, and the objectives and a hash of the weights after the
4 steps as hex (to check that a cached executable computes the same bits). `--xla-cache LOGDIR` turns the
persistent cache on under LOGDIR first (`infra/compile_cache.enable`, before TensorFlow is imported) and
reports the cache entries before and after.
"""
import argparse
import collections
import glob
import os
import re
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchmark  # noqa: E402


def op_times(xspace_path, steps, wall_names=('_metatrain_step', 'steps', 'SessionRun')):
    """({(thread line, op name): ms per step}, wall ms of one step) from a profiler XSpace file (the wall: the
    events named `wall_names`, the compiled function's own, on the Python thread's line)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    space = xplane_pb2.XSpace()
    with open(xspace_path, 'rb') as f:
        space.ParseFromString(f.read())
    times, wall = collections.Counter(), 0.0
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, '?')
                ms = event.duration_ps / 1e9 / steps
                if name in wall_names:
                    wall += ms
                times[(line.name, name)] += ms
    return times, wall


def by_kind(times):
    """Busy ms per step by op kind, summed over the runtime's worker threads: every matrix product
    (XLA names them after the TF op, `MatMul_3.20`, or `dot.7`) counts as `dot`; other names lose
    their trailing numbers (`add_rsqrt_fusion.4` -> `add_rsqrt_fusion`)."""
    kinds = collections.Counter()
    for (line, name), ms in times.items():
        if line.startswith('tf_') and not name.startswith(('ThunkExecutor', 'end:')):
            if ':' in name:   # a TensorFlow kernel (the tf1 graph): 'scope/op_name:OpType'
                name = name.rsplit(':', 1)[1]
            if name in ('Process', 'Start', 'Done', 'ParallelFor'):   # TF executor / thread pool events around
                continue                                                # (and over) the kernels
            kind = re.sub(r'[._]\d+.*$', '', name)
            kinds['dot' if kind in ('MatMul', 'BatchMatMul', 'BatchMatMulV2', 'dot', 'einsum') else kind] += ms
    return kinds


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def first_call(setting_name, cache_logdir=None):
    """{phase: (wall s, CPU s)} for 'import' (TensorFlow and the model code), 'trace', 'first_call' and 'next_3' of
    the setting's XLA step, plus 'objectives' (4 floats as hex), 'weights_sha256', 'tracing_count' (1: traced once)
    and, with `cache_logdir`, 'cache_dir' and the cache entries' (name, bytes) 'entries_before' / 'entries_after'."""
    import hashlib
    from infra import compile_cache
    report = {}
    directory = compile_cache.enable(cache_logdir) if cache_logdir else None
    def entries():
        if not directory or not os.path.isdir(directory):
            return []
        return sorted((n, os.path.getsize(os.path.join(directory, n))) for n in os.listdir(directory))
    report['cache_dir'], report['entries_before'] = directory, entries()
    t0, c0 = time.perf_counter(), _cpu_seconds()
    import numpy as np
    import tensorflow as tf
    import maml  # noqa: F401
    report['import'] = (time.perf_counter() - t0, _cpu_seconds() - c0)
    setting = benchmark.SETTINGS[setting_name]
    model = benchmark.build_model(setting, 'xla')
    batch = [tf.constant(a) for a in benchmark.make_batch(setting)]
    step = model._compiled('metatrain', model._metatrain_step, True)    # what model.metatrain_step calls
    objectives = []
    for phase, run in (('trace', lambda: step.get_concrete_function(*batch)),
                       ('first_call', lambda: objectives.append(step(*batch).numpy())),
                       ('next_3', lambda: [objectives.append(step(*batch).numpy()) for _ in range(3)])):
        t0, c0 = time.perf_counter(), _cpu_seconds()
        run()
        report[phase] = (time.perf_counter() - t0, _cpu_seconds() - c0)
    digest = hashlib.sha256()
    for name in sorted(model.meta_variables):
        digest.update(np.asarray(model.meta_variables[name].numpy()).tobytes())
    report.update(objectives=[float(v).hex() for v in objectives], weights_sha256=digest.hexdigest(),
                  tracing_count=step.experimental_get_tracing_count(), entries_after=entries())
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('setting', choices=list(benchmark.SETTINGS))
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--top', type=int, default=15)
    parser.add_argument('--mode', choices=('xla', 'xla_loop', 'tf1'), default='xla')
    parser.add_argument('--steps-per-execution', type=int, default=100, help='meta-iterations per call of xla_loop')
    parser.add_argument('--task-groups', type=int, default=0, help='MAML.task_groups (0: the device default)')
    parser.add_argument('--first-call', action='store_true', help='split the first call of the XLA step instead')
    parser.add_argument('--xla-cache', metavar='LOGDIR', help='--first-call: the persistent XLA cache under LOGDIR')
    args = parser.parse_args(argv)
    if args.first_call:
        report = first_call(args.setting, args.xla_cache)
        for phase in ('import', 'trace', 'first_call', 'next_3'):
            print(f'{phase}: {report[phase][0]:.3g} s wall, {report[phase][1]:.3g} s CPU')
        print(f"traced {report['tracing_count']} time(s); objectives {' '.join(report['objectives'])}; weights sha256 "
              f"{report['weights_sha256']}")
        if args.xla_cache:
            print(f"cache {report['cache_dir']}: entries before {report['entries_before']}, after "
                  f"{report['entries_after']}")
        return
    import tensorflow as tf
    setting = benchmark.SETTINGS[args.setting]
    if args.mode == 'tf1':
        step, batch, per_call = benchmark.tf1_style_step(setting), [], 1
    else:
        batch = [tf.constant(a) for a in benchmark.make_batch(setting)]
        step, per_call = benchmark.step_function(benchmark.build_model(setting, args.mode, args.task_groups),
                                                 args.mode, batch, args.steps_per_execution)
    for _ in range(3):
        step(*batch).numpy()
    logdir = tempfile.mkdtemp(prefix='maml_profile_')
    tf.profiler.experimental.start(logdir)
    for _ in range(args.steps):
        step(*batch).numpy()
    tf.profiler.experimental.stop()
    times, wall = op_times(sorted(glob.glob(os.path.join(logdir, '**', '*.xplane.pb'), recursive=True))[-1],
                           args.steps * per_call)
    kinds = by_kind(times)
    busy = sum(kinds.values())
    what = f'{args.steps} steps' if per_call == 1 else f'{args.steps} calls of {per_call} steps, per step'
    print(f'setting {args.setting}, mean of {what}: {wall:.3g} ms wall, {busy:.3g} ms busy on the '
          f'worker threads ({busy / max(wall, 1e-9):.2f} cores busy on average)')
    for kind, ms in kinds.most_common(args.top):
        print(f'{ms:10.3g} ms  {100 * ms / max(busy, 1e-9):5.1f} %  {kind}')
    if not kinds:
        print('no op-level events: set XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true before starting')


if __name__ == '__main__':
    main()
