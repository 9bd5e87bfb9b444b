#!/usr/bin/env python3
"""Peak memory of one second-order meta-train step against --num_updates, with and without --remat.

    python scripts/memory_remat.py [--steps 1 5 10] [--setting c] [--modes xla function] [--json FILE]

For each (num_updates, remat, mode) a fresh process builds the setting's MAML (scripts/benchmark.py's settings;
default c: MiniImagenet 5-way 1-shot, B=4, 32 filters, max-pool, 15 query per class; random inputs of those shapes),
runs `metatrain_step` `--calls` times (default 1; the first traces and, with XLA, compiles) and reports two
measures: the peak of TensorFlow's allocator on the step's device (CPU: TensorFlow's BFC allocator, switched on
for the measured process by TF_CPU_ALLOCATOR_USE_BFC; GPU: the device allocator) above what was allocated before
the first call (weights, inputs), i.e. the step's own tensors and XLA's buffers, exactly; and the process's
resident-set high-water mark (ru_maxrss) above its RSS before the first call, which adds XLA's compile, TensorFlow
runtime caches and malloc's slack (noisy: the same row varied by 15 % between runs). Also the seconds of the last
call. Prints one table; `--json` writes the rows (after each one; a configuration whose process fails, e.g.
killed for lack of memory, is a row with its `error`, and the script goes on), `--plot FILE.png` draws them (the
allocator's measure against num_updates: a line per mode, solid without --remat, dashed with it);
`--from_json FILE --plot FILE.png` redraws saved rows, measuring nothing.

    python scripts/memory_remat.py --steps 1 5 10 20 --modes function --json rows.json --plot memory.png
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_mb():
    """The process's current resident set (MiB) from /proc/self/statm."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2 ** 20


def child(setting_name, steps, remat, mode, calls=1):
    """Runs in the measured process: returns {'device', 'alloc_before_mb', 'alloc_peak_mb', 'before_mb', 'peak_mb',
    'step_s'} (MiB; alloc_*: TensorFlow's allocator on `device`, before the first call and its peak during the calls;
    before/peak: the process's RSS before the first call and its high-water mark)."""
    sys.path.insert(0, REPO)
    sys.path.insert(0, os.path.join(REPO, 'scripts'))
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    os.environ['TF_CPU_ALLOCATOR_USE_BFC'] = 'true'   # so that the CPU allocator keeps statistics
    import benchmark
    import tensorflow as tf
    from config import Config
    from maml import MAML
    setting = benchmark.SETTINGS[setting_name]
    flags = dict(setting.flags, num_updates=steps)
    config = Config(**flags, seed=0, xla=mode == 'xla', remat=remat)
    model = MAML(setting.dim_input, setting.dim_output, 1, config)
    batch = [tf.constant(a) for a in benchmark.make_batch(setting)]
    device = 'GPU:0' if tf.config.list_logical_devices('GPU') else 'CPU:0'
    tf.config.experimental.reset_memory_stats(device)
    alloc_before = tf.config.experimental.get_memory_info(device)['current'] / 2 ** 20
    before = rss_mb()
    for _ in range(calls):
        t0 = time.perf_counter()
        float(model.metatrain_step(*batch))
        step_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    alloc_peak = tf.config.experimental.get_memory_info(device)['peak'] / 2 ** 20
    return dict(device=device.split(':')[0], alloc_before_mb=alloc_before, alloc_peak_mb=alloc_peak, before_mb=before,
                peak_mb=peak, step_s=step_s)


def measure(setting, steps, remat, mode, calls):
    """child()'s row from a fresh process, with the configuration's keys; a process that fails (an exception, or
    killed, e.g. by the kernel's OOM killer) gives a row with 'error': what happened, and no measures."""
    code = (f'import json, sys; sys.path.insert(0, {os.path.join(REPO, "scripts")!r}); import memory_remat; '
            f'print("RESULT " + json.dumps(memory_remat.child({setting!r}, {steps}, {remat}, {mode!r}, {calls})))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith('RESULT ')]
    row = dict(num_updates=steps, remat=remat, mode=mode, setting=setting)
    if out.returncode or not lines:
        last = [line for line in out.stderr.splitlines() if line.strip()][-1:] or ['no output']
        how = f'killed by signal {-out.returncode}' if out.returncode < 0 else f'exit status {out.returncode}'
        return dict(row, error=f'{how}: {last[0][-300:]}')
    return dict(json.loads(lines[-1][len('RESULT '):]), **row)


def needed_mb(row):
    """MiB one step allocated beyond the model and inputs: the allocator's peak above its level before the step."""
    return row['alloc_peak_mb'] - row['alloc_before_mb']


def memory_figure(rows):
    """The figure of `rows` (measure()'s dicts): needed_mb against num_updates, a line per (mode, remat); failed
    rows are left out."""
    import plots   # scripts/, this file's folder, is on sys.path wherever this module was imported from
    plt = plots._pyplot()
    rows = [r for r in rows if 'error' not in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    for (mode, remat), colour in zip(sorted({(r['mode'], r['remat']) for r in rows}), 'C0 C0 C1 C1'.split()):
        line = sorted((r['num_updates'], needed_mb(r)) for r in rows if (r['mode'], r['remat']) == (mode, remat))
        ax.plot(*zip(*line), 'o' + ('--' if remat else '-'), color=colour,
                label=f'{"XLA" if mode == "xla" else "tf.function, no XLA"}{", --remat" if remat else ""}')
    devices = sorted({r['device'] for r in rows})
    settings = sorted({r['setting'] for r in rows})
    ax.set_xlabel('inner steps (--num_updates), second order')
    ax.set_ylabel(f'{"/".join(devices)} allocator peak above the weights (MiB)')
    ax.set_xticks(sorted({r['num_updates'] for r in rows}))
    ax.set_ylim(bottom=0)
    ax.set_title(f'Memory of one meta-train step, scripts/benchmark.py setting {", ".join(settings)}', fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, nargs='+', default=[1, 5, 10])
    parser.add_argument('--setting', default='c')
    parser.add_argument('--modes', nargs='+', default=['xla'], choices=['xla', 'function'])
    parser.add_argument('--calls', type=int, default=1, help='meta-train steps per process (the first traces and '
                        'compiles)')
    parser.add_argument('--json', default='')
    parser.add_argument('--plot', default='', help='draw the rows into this PNG')
    parser.add_argument('--from_json', default='', help='rows saved by --json: plot them, measure nothing')
    args = parser.parse_args(argv)
    if args.from_json:
        if not args.plot:
            parser.error('--from_json only redraws saved rows; add --plot FILE.png')
        try:
            with open(args.from_json) as f:
                rows = json.load(f)
        except (OSError, ValueError) as e:
            parser.error(f'cannot read rows from --from_json {args.from_json}: {e}; give the file --json wrote')
        return plot(rows, args.plot)
    rows = []
    print('| mode | num_updates | remat | device | allocator before (MiB) | allocator peak (MiB) | step needed (MiB) | '
          'RSS before (MiB) | RSS peak (MiB) | RSS peak - before (MiB) | last call (s) |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    for mode in args.modes:
        for steps in args.steps:
            for remat in (False, True):
                r = measure(args.setting, steps, remat, mode, args.calls)
                rows.append(r)
                cells = (f'failed: {r["error"]}' if 'error' in r else
                         f'{r["device"]} | {r["alloc_before_mb"]:.0f} | {r["alloc_peak_mb"]:.0f} | '
                         f'{needed_mb(r):.0f} | {r["before_mb"]:.0f} | {r["peak_mb"]:.0f} | '
                         f'{r["peak_mb"] - r["before_mb"]:.0f} | {r["step_s"]:.2f}')
                print(f'| {mode} | {steps} | {"yes" if remat else "no"} | {cells} |', flush=True)
                if args.json:   # after every row, so that a run stopped half-way keeps what it measured
                    with open(args.json, 'w') as f:
                        json.dump(rows, f, indent=1)
    if args.plot:
        plot(rows, args.plot)


def plot(rows, out):
    """Writes memory_figure(rows) as PNG to `out` and says where."""
    import plots
    print(f'wrote {plots._save(memory_figure(rows), out)}')


if __name__ == '__main__':
    main()
