#!/usr/bin/env python3
"""The results table of the paper's experiments, from the logs scripts/reproduce.py writes.

    python scripts/report.py [--logdir logs] [--out docs/RESULTS.md]      (--out -: standard output)

For every experiment of reproduce.py's registry that has a folder `<logdir>/<name>/`, reads its
test CSV (main.py's `test_ubs<K>_stepsize<lr>.csv`: mean, std and 95% CI per inner step over the
test tasks) and its `run.json` (commands, machine, git commit, sessions with start, end, wall
time and iterations), and writes Markdown: a summary table with our number at the paper's
number of inner steps, the paper's, the difference, whether they agree within the combined 95%
confidence intervals, iterations trained and training wall time; then the settings where the
paper and the original's usage notes differ; then per experiment its commands, sessions,
machine, notes and the whole test curve. Experiments without a folder are listed as not run.

Agreement: |ours - paper| <= CI_ours + CI_paper, the two intervals overlap. The paper's sinusoid
table gives no interval, so there only our CI counts (marked *).

A bad argument or an unreadable log stops with one line, `report.py: error: <what>; <how to fix>`,
exit status 2, before anything is written.
"""
import argparse
import csv
import json
import math
import os
import pickle
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reproduce  # noqa: E402  (scripts/reproduce.py: the registry)

PROG = 'report.py'
DIVERGED_MSE = 10.0            # a task's MSE above this (or not finite) counts as diverged (the pre-update MSE is ~3)
COMMAND = 'python scripts/report.py --logdir logs --out docs/RESULTS.md'


class UsageError(Exception):
    """Something the user can fix; the message is one line: '<what is wrong>; <how to fix>'."""


# ------------------------------------------------------------------------------------ reading
def read_csv(path):
    """(mean, ci95) lists over inner steps 0..T from main.py's test CSV (header update0..updateT)."""
    try:
        with open(path, newline='') as f:
            rows = list(csv.reader(f))
        header = rows[0]
        if header != ['update' + str(i) for i in range(len(header))] or len(rows) != 4:
            raise ValueError('not the header update0..updateT and three rows')
        mean, _, ci95 = ([float(v) for v in row] for row in rows[1:])
        if not len(mean) == len(ci95) == len(header):
            raise ValueError('rows of different lengths')
    except (OSError, ValueError, IndexError) as e:
        raise UsageError(f'cannot read {path} ({e}); run the test again (reproduce.py NAME, or main.py '
                         f'--train=False)') from None
    return mean, ci95


def read_rows(path):
    """The per-task results [tasks, T+1] from main.py's test pkl ({'mses': ...}), or None if there is no pkl."""
    try:
        with open(path, 'rb') as f:
            return np.asarray(pickle.load(f)['mses'], np.float64)
    except FileNotFoundError:
        return None
    except (OSError, KeyError, ValueError, pickle.UnpicklingError) as e:
        raise UsageError(f'cannot read {path} ({e}); run the test again (reproduce.py NAME, or main.py '
                         f'--train=False)') from None


def read_record(path):
    """run.json of an experiment ({} if there is none)."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise UsageError(f'cannot read {path} ({e}); fix or delete it') from None


def latest_checkpoint_iterations(directory):
    """(iterations done, prefix) by the name of the latest checkpoint (model<itr> holds itr + 1); (0, None)."""
    import main
    prefix = main.latest_checkpoint(directory)
    if not prefix:
        return 0, None
    return int(re.search(r'model(\d+)$', prefix).group(1)) + 1, prefix


def collect(experiment, logdir):
    """What the report needs of one experiment, or None if `<logdir>/<name>` does not exist.

    A dict: record (run.json), csv path, mean and ci95 per step (None if not tested), iterations
    trained when tested, iterations in the latest checkpoint, planned iterations and train wall
    seconds (sessions with an end).
    """
    folder = os.path.join(logdir, experiment.name)
    if not os.path.isdir(folder):
        return None
    record = read_record(os.path.join(folder, reproduce.RUN_FILE))
    flags = reproduce.train_flags(experiment, folder)
    config = reproduce.parse_config(flags)
    exp_dir = os.path.join(logdir, record['exp_dir']) if record.get('exp_dir') else reproduce.exp_dir(config)
    csv_path = (os.path.join(logdir, record['test_csv']) if record.get('test_csv')
                else reproduce.test_csv(reproduce.parse_config(reproduce.test_flags(experiment, flags))))
    latest, prefix = latest_checkpoint_iterations(exp_dir)
    sessions = record.get('sessions', [])
    tests = [s for s in sessions if s.get('phase') == 'test' and s.get('returncode') == 0]
    mean = ci95 = tested = rows = None
    if os.path.isfile(csv_path):
        mean, ci95 = read_csv(csv_path)
        rows = read_rows(csv_path[:-4] + '.pkl')
        if tests:
            tested = tests[-1].get('iterations')
        elif prefix and os.path.getmtime(csv_path) >= os.path.getmtime(prefix + '.index'):
            tested = latest
    trains = [s for s in sessions if s.get('phase') == 'train']
    return dict(record=record, folder=folder, exp_dir=exp_dir, csv=csv_path, mean=mean, ci95=ci95, rows=rows,
                tested=tested, latest=latest,
                planned=record.get('planned_iterations', config.pretrain_iterations + config.metatrain_iterations),
                train_wall=sum(s['wall_s'] for s in trains if s.get('wall_s') is not None))


# ------------------------------------------------------------------------------------ formatting
def fmt(metric, value, signed=False):
    """A value as the table shows it: accuracy in % with 2 decimals, MSE with 3 (4 below 0.01, 3 digits if >= 1000)."""
    if value is None:
        return '—'
    if metric == 'accuracy':
        value *= 100
    if not math.isfinite(value):
        return str(value)
    sign = '+' if signed else ''
    if metric == 'mse' and abs(value) >= 1000:
        return f'{value:{sign}.3g}'
    if metric == 'mse' and 0 < abs(value) < 0.01:        # e.g. the oracle's MSE
        return f'{value:{sign}.4f}'
    return f'{value:{sign}.{2 if metric == "accuracy" else 3}f}'


def duration(seconds):
    """'1h02m03s', '4m05s' or '12s'."""
    seconds = int(round(seconds))
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f'{h}h{m:02d}m{s:02d}s' if h else (f'{m}m{s:02d}s' if m else f'{s}s')


def machine_text(m):
    """One line describing the machine of a run record."""
    if not m:
        return 'not recorded'
    parts = [f'{m.get("cpu", "?")}, {m.get("logical_cpus", "?")} logical CPUs']
    if m.get('avx512'):
        parts.append('AVX-512')
    if m.get('virtual_machine'):
        parts.append('virtual machine')
    parts.append('GPU: ' + m.get('gpu', '?'))
    parts.append('TensorFlow ' + m.get('tensorflow', '?'))
    parts.append('Python ' + m.get('python', '?'))
    return ', '.join(parts)


def summary_rows(experiment, info):
    """Markdown rows of the summary table for one experiment (one per reported number of inner steps)."""
    metric = experiment.metric
    results = experiment.paper or tuple(reproduce.PaperResult(s, None) for s in experiment.steps)
    trained = f'{info["tested"]} / {info["planned"]}' if info['tested'] is not None else \
        f'{info["latest"]} / {info["planned"]} (not tested)'
    wall = duration(info['train_wall']) if info['train_wall'] else '—'
    smoke = ' (smoke)' if info['record'].get('smoke') else ''
    rows = []
    for r in results:
        ours = ci = None
        if info['mean'] is not None and r.step < len(info['mean']):
            ours, ci = info['mean'][r.step], info['ci95'][r.step]
        ours_text = '—' if ours is None else f'{fmt(metric, ours)} ± {fmt(metric, ci)}'
        paper = diff = within = '—'
        if r.mean is not None:
            paper = r.mean + ('' if r.ci is None else f' ± {r.ci}')
            if ours is not None:
                p = float(r.mean) / (100 if metric == 'accuracy' else 1)
                pci = 0.0 if r.ci is None else float(r.ci) / (100 if metric == 'accuracy' else 1)
                d = ours - p
                diff = fmt(metric, d, signed=True)
                ok = math.isfinite(d) and abs(d) <= ci + pci
                within = ('yes' if ok else 'no') + ('*' if r.ci is None else '')
        rows.append(f'| {experiment.name}{smoke} | {r.step} | {ours_text} | {paper} | {diff} | {within} | '
                    f'{trained} | {wall} |')
    return rows


def session_line(s):
    wall = duration(s['wall_s']) if s.get('wall_s') is not None else 'no end recorded (interrupted or running)'
    end = s.get('end') or '?'
    text = f'{s.get("phase")}: {s.get("start", "?")} to {end}, wall {wall}'
    if s.get('phase') == 'train':
        text += f', iterations {s.get("iterations_before", "?")} → {s.get("iterations_after", "?")}'
        if s.get('target_iterations'):
            text += f' (aiming at {s["target_iterations"]})'
    else:
        text += f', checkpoint {s.get("checkpoint", "?")} ({s.get("iterations", "?")} iterations), ' \
                f'{s.get("test_tasks", "?")} tasks'
    if s.get('returncode') not in (0, None):
        text += f', exit status {s["returncode"]}'
    if s.get('interrupted'):
        text += ', interrupted'
    if s.get('load_average_start'):
        text += f', load average {s["load_average_start"][0]:.1f}'
        if s.get('load_average_end'):
            text += f' at start, {s["load_average_end"][0]:.1f} at end'
    return text + f', commit `{s.get("git_commit", "?")}`'


def details(experiment, info, logdir):
    """The Markdown section of one experiment: commands, sessions, machine, notes, the whole test curve."""
    r = info['record']
    metric = experiment.metric
    out = [f'### {experiment.name}: {experiment.title}', '']
    if r.get('smoke'):
        out += ['A smoke run (a check of the pipeline, not a result).', '']
    if r.get('train_command'):
        out += ['```bash', r['train_command'], r.get('test_command', ''), '```', '']
    elif not r:
        out += ['No run record (run.json); the run was not made by reproduce.py.', '']
    out.append(f'- Run folder: `{os.path.relpath(info["exp_dir"], os.path.dirname(logdir) or ".")}`')
    tested = info['tested']
    out.append(f'- Iterations trained: {info["latest"]} of {info["planned"]} in the latest checkpoint'
               + ('' if tested is None or tested == info['latest'] else f'; the test used {tested}'))
    if info['train_wall']:
        out.append(f'- Training wall time (all sessions with an end time): {duration(info["train_wall"])}')
    for s in r.get('sessions', []):
        out.append('- ' + session_line(s))
    if r.get('machine'):
        out.append('- Machine: ' + machine_text(r['machine']))
    for note in r.get('notes', []):
        out.append('- ' + note)
    out.append('')
    if info['mean'] is None:
        out += ['Not tested yet.', '']
        return out
    unit = 'accuracy (%)' if metric == 'accuracy' else 'MSE'
    n = len(info['mean'])
    out.append(f'Test {unit} after each number of inner steps, mean ± 95% CI, from '
               f'`{os.path.relpath(info["csv"], os.path.dirname(logdir) or ".")}`:')
    out.append('')
    out.append('| inner steps | ' + ' | '.join(str(i) for i in range(n)) + ' |')
    out.append('|---' * (n + 1) + '|')
    out.append('| ours | ' + ' | '.join(f'{fmt(metric, m)} ± {fmt(metric, c)}'
                                        for m, c in zip(info['mean'], info['ci95'])) + ' |')
    rows = info.get('rows')
    if metric == 'mse' and rows is not None and rows.shape[1] == n:
        diverged = ~(rows <= DIVERGED_MSE)      # also nan and inf
        median = np.median(np.where(np.isnan(rows), np.inf, rows), 0)      # a nan task counts as the worst
        out.append('| median over tasks | ' + ' | '.join(fmt(metric, float(v)) for v in median) + ' |')
        out.append(f'| tasks with MSE > {DIVERGED_MSE:g} or not finite | '
                   + ' | '.join(str(int(v)) for v in diverged.sum(0)) + ' |')
        kept = [float(np.mean(rows[~diverged[:, j], j])) if (~diverged[:, j]).any() else None for j in range(n)]
        out.append('| mean over the other tasks | ' + ' | '.join(fmt(metric, v) for v in kept) + ' |')
        out.append('')
        out.append(f'Per-task values from the `.pkl` beside the CSV ({len(rows)} tasks; nan counts as the largest '
                   f'in the median). A task is counted when its MSE is above {DIVERGED_MSE:g} or not finite, the '
                   f'rule of `../shared/golden/tf1/sinusoid_70k.md` for the original code: before adaptation these '
                   f'are tasks of large amplitude (a sinusoid of amplitude 5 predicted as 0 has an MSE of 12.5), '
                   f'after it mostly tasks whose error grew in the inner loop.')
    out.append('')
    return out


def report(logdir):
    """The whole Markdown document for the experiments under `logdir`."""
    infos = {name: collect(e, logdir) for name, e in reproduce.EXPERIMENTS.items()}
    done = {name: info for name, info in infos.items() if info is not None}
    machines = []
    for info in done.values():
        text = machine_text(info['record'].get('machine'))
        if text not in machines:
            machines.append(text)
    out = ['# Results of real runs', '',
           f'Generated by `scripts/report.py` from the logs that `scripts/reproduce.py` writes (regenerate with '
           f'`{COMMAND}`); every number below is read from the files named in its section. Each experiment is '
           f'`python scripts/reproduce.py NAME` (list: `--list`), which runs the two main.py commands shown in '
           f'its section.', '']
    out.append('Machine' + ('s' if len(machines) > 1 else '') + ': ' + ('; '.join(machines) or 'none yet') + '.')
    out += ['', '## Summary', '',
            'Ours: mean over the test tasks ± 95% confidence interval (1.96·std/√tasks; 600 tasks, the '
            'original protocol) from main.py\'s test CSV, after the number of inner steps the paper reports '
            '(sinusoid settings the paper shows only in figures: 1, 5 and 10 steps as its table, the oracle '
            'before adaptation; accuracy in %, mean squared error for sinusoid). Paper: Finn et al. 2017, ± its '
            '95% CI. '
            'Difference: ours − paper. Within CI: |difference| ≤ our CI + the paper\'s CI, i.e. the '
            'intervals overlap; * where the paper gives no interval (only our CI counts). Iterations: '
            'trained when tested / the paper\'s count. Train wall: the training sessions\' wall times added '
            'up (interrupted ones included, TensorFlow start-up and compilation too).', '',
            '| experiment | inner steps | ours | paper | difference | within CI | iterations | train wall |',
            '|---|---|---|---|---|---|---|---|']
    for name, info in done.items():
        out += summary_rows(reproduce.EXPERIMENTS[name], info)
    missing = [name for name, info in infos.items() if info is None]
    out.append('')
    if missing:
        out += ['Not run: ' + ', '.join(missing) + '.', '']
    out += ['## Settings', '', 'The paper\'s hyperparameters; where the original\'s usage notes differ:', '']
    out += ['- ' + note for note in reproduce.NOTES]
    out += ['', '## Runs', '']
    for name, info in done.items():
        out += details(reproduce.EXPERIMENTS[name], info, logdir)
    return '\n'.join(out).rstrip('\n') + '\n'


# ------------------------------------------------------------------------------------ CLI
def fail(message, status=2):
    reproduce.fail(message, status, PROG)


def main(argv=None):
    p = reproduce._Parser(prog=PROG, description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog=__doc__[__doc__.index('\n') + 1:])
    p.add_argument('--logdir', default='logs', help='the folder with one <experiment name>/ per run')
    p.add_argument('--out', default='-', help='Markdown file to write (-: standard output)')
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if not os.path.isdir(args.logdir):
        p.error(f'--logdir={args.logdir} is not a folder')
    try:
        text = report(args.logdir)
    except (UsageError, reproduce.UsageError) as e:
        fail(e)
    if args.out == '-':
        sys.stdout.write(text)
        return 0
    tmp = f'{args.out}.tmp{os.getpid()}'
    try:
        with open(tmp, 'w') as f:
            f.write(text)
        os.replace(tmp, args.out)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        fail(f'cannot write --out={args.out} ({e.strerror}); choose a writable path')
    return 0


if __name__ == '__main__':
    sys.exit(main())
