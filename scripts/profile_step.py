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
"""
import argparse
import collections
import glob
import os
import re
import sys
import tempfile

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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('setting', choices=list(benchmark.SETTINGS))
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--top', type=int, default=15)
    parser.add_argument('--mode', choices=('xla', 'xla_loop', 'tf1'), default='xla')
    parser.add_argument('--steps-per-execution', type=int, default=100, help='meta-iterations per call of xla_loop')
    parser.add_argument('--task-groups', type=int, default=0, help='MAML.task_groups (0: the device default)')
    args = parser.parse_args(argv)
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
