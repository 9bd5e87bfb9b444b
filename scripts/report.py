#!/usr/bin/env python3
"""The results table of the paper's experiments, from the logs scripts/reproduce.py writes.

    python scripts/report.py [--logdir logs] [--out FILE]    (default <logdir>/RESULTS.md; --out -: standard output)

The committed docs/RESULTS.md is written only when asked: --out docs/RESULTS.md.

For every experiment of reproduce.py's registry that has a folder `<logdir>/<name>/`, reads its
test CSV (main.py's `test_ubs<K>_stepsize<lr>.csv`: mean, std and 95% CI per inner step over the
test tasks) and its `run.json` (commands, machine, git commit, sessions with start, end, wall
time and iterations), and writes Markdown: a summary table with our number at the paper's
number of inner steps, the paper's, the difference, whether they agree within the combined 95%
confidence intervals, iterations trained and training wall time; then the settings where the
paper and the original's usage notes differ; then per experiment its commands, sessions,
machine, notes and the whole test curve. Experiments without a folder are listed as not run.

Runs over seeds (`reproduce.py NAME --seeds ...`, folders `<logdir>/<name>/seed<s>/`): a row per
seed as above and a row with the mean ± std (ddof 1) over the seeds; a section "Over seeds" with,
per number of inner steps, mean ± std, n, min–max, the paper's number and the original TF1 code's
figures on this machine (ORIGINAL, read by hand from ../shared/golden/tf1/), and for the sinusoid,
whose seed s draws the same training tasks as the original's np.random.seed(s), seed by seed the
mean, the per-task median and the count of diverged tasks beside the original's same seed.

Any other main.py logdir works too: folders `<logdir>/<exp_string>/` (or deeper, outside the
registry's names) with test CSVs are listed under "Other runs" with their whole test curves and
no paper comparison (accuracy or MSE told by the run's event files, else by the values).

Agreement: |ours - paper| <= CI_ours + CI_paper, the two intervals overlap. The paper's sinusoid
table gives no interval, so there only our CI counts (marked *).

A bad argument or an unreadable log stops with one line, `report.py: error: <what>; <how to fix>`,
exit status 2, before anything is written.
"""
import argparse
import csv
import dataclasses
import glob
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
COMMAND = 'python scripts/report.py --logdir logs'          # writes logs/RESULTS.md
REPORT_FILE = 'RESULTS.md'     # the default --out, inside --logdir
TEST_CSV = re.compile(r'^test_ubs\d+_stepsize.+\.csv$')


@dataclasses.dataclass(frozen=True)
class OriginalRun:
    """A result of the original TF1 code (cbfinn/maml) on this machine (2-core Xeon), from `source`.

    `mean`, `median` (over the 600 test tasks) and `diverged` (tasks with MSE > 10 or not finite)
    map inner steps to the figure as the notes print it (strings; accuracy in %). `seed`: the
    np.random.seed of the run (None: unseeded), which the sinusoid pairs with our --seed.
    """
    label: str
    seed: int | None
    iterations: int
    source: str
    mean: dict
    median: dict = dataclasses.field(default_factory=dict)
    diverged: dict = dataclasses.field(default_factory=dict)


# The original code, this machine: read by hand from ../shared/golden/tf1/ (not parsed at run time).
ORIGINAL = {
    'sine_k5_maml': (
        OriginalRun('seed 0', 0, 70000, 'sinusoid_seeds.md',
                    {0: '2.872', 1: '0.577', 2: '0.495', 3: '14.195', 5: '1.22e+08', 10: '1.32e+28'},
                    {1: '0.304', 2: '0.221', 5: '0.166', 10: '0.145'}, {0: 22, 1: 0, 2: 1, 3: 7, 5: 9, 10: 5}),
        OriginalRun('seed 1', 1, 70000, 'sinusoid_seeds.md',
                    {0: '2.882', 1: '0.610', 2: '0.448', 3: '0.434', 5: '1.27e+04', 10: '1.26e+04'},
                    {1: '0.314', 2: '0.200', 5: '0.137', 10: '0.122'}, {0: 26, 1: 0, 2: 0, 3: 0, 5: 1, 10: 1}),
        OriginalRun('unseeded', None, 70000, 'sinusoid_70k.md',
                    {0: '2.876', 1: '0.584', 2: '0.517', 3: '178', 5: '1.9e+08', 10: 'nan'},
                    {1: '0.290', 2: '0.186', 3: '0.179', 5: '0.149', 10: '0.132'}, {2: 2, 3: 4, 5: 8, 10: 4})),
    'sine_k10_maml': (
        OriginalRun('unseeded', None, 70000, 'sinusoid_70k.md',
                    {0: '3.084', 1: '0.423', 2: '0.251', 3: '0.216', 5: '0.198', 10: '0.133'}),),
    'omniglot_5w1s': (
        OriginalRun('run 1', None, 2000, 'omniglot_training.md', {0: '20.80', 1: '85.37', 10: '86.57'}),
        OriginalRun('run 2', None, 2000, 'omniglot_training.md', {0: '20.83', 1: '77.73', 10: '78.97'})),
}


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


def collect(experiment, logdir, seed=None):
    """What the report needs of one experiment, or None if `<logdir>/<name>` does not exist.

    A dict: record (run.json), csv path, mean and ci95 per step (None if not tested), iterations
    trained when tested, iterations in the latest checkpoint, planned iterations and train wall
    seconds (sessions with an end). `seed`: the run in `<logdir>/<name>/seed<seed>`.
    """
    folder = reproduce.run_folder(logdir, experiment.name, seed)
    if not os.path.isdir(folder):
        return None
    record = read_record(os.path.join(folder, reproduce.RUN_FILE))
    flags = reproduce.train_flags(experiment, folder, seed=seed)
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
    return dict(record=record, folder=folder, seed=seed, exp_dir=exp_dir, csv=csv_path, mean=mean, ci95=ci95, rows=rows,
                tested=tested, latest=latest,
                planned=record.get('planned_iterations', config.pretrain_iterations + config.metatrain_iterations),
                train_wall=sum(session_wall(s) or 0 for s in trains),
                diverged=bool(trains) and trains[-1].get('returncode') == reproduce.EXIT_DIVERGED)


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
    if info.get('diverged'):
        trained += ' (training diverged)'
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
                within = ('yes' if ok else 'no') + ('*' if r.ci is None else '') + ('†' if experiment.paper_spread
                                                                                      else '')
        rows.append(f'| {run_label(experiment, info)}{smoke} | {r.step} | {ours_text} | {paper} | {diff} | {within} | '
                    f'{trained} | {wall} |')
    return rows


def run_label(experiment, info):
    """`<name>`, or `<name>/seed<s>` for one seed's run."""
    return experiment.name + ('' if info.get('seed') is None else f'/seed{info["seed"]}')


def paper_value(metric, result):
    """The paper's number of a PaperResult in the CSV's unit (accuracy as a fraction), or None."""
    return None if result.mean is None else float(result.mean) / (100 if metric == 'accuracy' else 1)


def seed_stats(infos, step):
    """Over the tested seeds' runs `infos`: dict(seeds, values, n, mean, std (ddof 1; None for one seed),
    min, max) of their test means after `step` inner steps; None if no seed has one."""
    got = [(i['seed'], i['mean'][step]) for i in infos if i['mean'] is not None and step < len(i['mean'])]
    if not got:
        return None
    values = np.array([v for _, v in got], np.float64)
    return dict(seeds=[s for s, _ in got], values=values, n=len(values), mean=float(np.mean(values)),
                std=float(np.std(values, ddof=1)) if len(values) > 1 else None,
                min=float(np.min(values)), max=float(np.max(values)))


def mean_std(metric, stats):
    """'mean ± std' of seed_stats (just the mean for one seed)."""
    return fmt(metric, stats['mean']) + ('' if stats['std'] is None else f' ± {fmt(metric, stats["std"])}')


def seeds_summary_rows(experiment, infos):
    """Summary-table rows of an experiment run over seeds: per reported step, mean ± std (ddof 1) over the
    tested seeds and the difference to the paper."""
    metric = experiment.metric
    results = experiment.paper or tuple(reproduce.PaperResult(s, None) for s in experiment.steps)
    trained = sorted({i['tested'] for i in infos if i['tested'] is not None})
    planned = infos[0]['planned']
    trained = (f'{trained[0]} / {planned}' if len(trained) == 1 else
               f'{trained[0]}–{trained[-1]} / {planned}' if trained else '—')
    wall = sum(i['train_wall'] for i in infos)
    rows = []
    for r in results:
        stats = seed_stats(infos, r.step)
        ours = paper = diff = '—'
        if stats:
            ours = f'{mean_std(metric, stats)} (mean ± std over {stats["n"]} seed{"s" * (stats["n"] != 1)})'
        if r.mean is not None:
            paper = r.mean + ('' if r.ci is None else f' ± {r.ci}')
            if stats:
                diff = fmt(metric, stats['mean'] - paper_value(metric, r), signed=True)
        rows.append(f'| {experiment.name}, seeds {", ".join(str(i["seed"]) for i in infos)} | {r.step} | {ours} | '
                    f'{paper} | {diff} | — | {trained} | {duration(wall) if wall else "—"} |')
    return rows


def original_value(metric, text):
    """A figure of ORIGINAL in the CSV's unit (accuracy as a fraction)."""
    return float(text) / (100 if metric == 'accuracy' else 1)


def seed_steps(experiment):
    """The inner steps of the over-seeds tables: the paper's (or the registry's) and those the original's notes give."""
    steps = {r.step for r in experiment.paper} or set(experiment.steps)
    steps |= {j for o in ORIGINAL.get(experiment.name, ()) for j in o.mean if j != 0}
    return sorted(steps)


def over_seeds(seeded):
    """The "Over seeds" section: per experiment run over seeds and inner step, our mean ± std (ddof 1), n, min–max,
    the paper's number and the original code's figures with their range; then the sinusoid seed by seed."""
    out = ['## Over seeds', '',
           'Ours: the test means of the seeds\' runs (each over 600 tasks), their mean ± standard deviation (ddof 1) '
           'over the seeds, how many, smallest–largest. Paper: Finn et al. 2017 (after 60000 iterations for '
           'Omniglot, whatever the iterations here). Original code, this machine: the original TF1 code (cbfinn/maml) '
           'run on this 2-core Xeon, read from the notes named (`../shared/golden/tf1/`), with its iterations; '
           'within its range: yes if our mean lies between the smallest and largest of the original\'s finite '
           'figures, else below or above them (— with fewer than two figures).', '',
           '| experiment | inner steps | seeds | ours: mean ± std | ours: min–max | paper | original code, this machine '
           '| our mean within the original\'s range |',
           '|---|---|---|---|---|---|---|---|']
    for experiment, infos in seeded:
        metric = experiment.metric
        paper = {r.step: r for r in experiment.paper}
        originals = ORIGINAL.get(experiment.name, ())
        for j in seed_steps(experiment):
            stats = seed_stats(infos, j)
            r = paper.get(j)
            paper_text = '—' if r is None or r.mean is None else r.mean + ('' if r.ci is None else f' ± {r.ci}')
            known = [(o, o.mean[j]) for o in originals if j in o.mean]
            orig_text = '—'
            if known:
                orig_text = ', '.join(f'{v} ({o.label})' for o, v in known)
                its = dict.fromkeys(f'{o.iterations} it.' for o, _ in known)
                orig_text += f' ({"; ".join(its)}; {", ".join(dict.fromkeys(o.source for o, _ in known))})'
            within = '—'
            if stats and len(known) > 1:
                within = range_verdict(stats['mean'], [original_value(metric, v) for _, v in known])
            if stats:
                ours, span = mean_std(metric, stats), f'{fmt(metric, stats["min"])}–{fmt(metric, stats["max"])}'
                n = str(stats['n'])
            else:
                ours = span = '—'
                n = '0'
            out.append(f'| {experiment.name} | {j} | {n} | {ours} | {span} | {paper_text} | {orig_text} | {within} |')
    out.append('')
    for experiment, infos in seeded:
        if experiment.metric == 'mse':
            out += seed_by_seed(experiment, infos)
    return out


def range_verdict(value, figures):
    """'yes' if `value` lies between the smallest and largest finite of `figures`, else 'below' or 'above';
    '—' for a nan value or without finite figures (inf is above every finite figure)."""
    finite = [f for f in figures if math.isfinite(f)]
    if math.isnan(value) or not finite:
        return '—'
    return 'below' if value < min(finite) else 'above' if value > max(finite) else 'yes'


def task_stats(rows):
    """(median [T+1], diverged count [T+1], mean over the other tasks [T+1] (None where none is left)) of the
    per-task results `rows` [tasks, T+1]: a task diverged where its MSE is above DIVERGED_MSE or not finite,
    a nan task counts as the largest in the median."""
    diverged = ~(rows <= DIVERGED_MSE)      # also nan and inf
    median = np.median(np.where(np.isnan(rows), np.inf, rows), 0)
    kept = [float(np.mean(rows[~diverged[:, j], j])) if (~diverged[:, j]).any() else None
            for j in range(rows.shape[1])]
    return median, diverged.sum(0), kept


def seed_by_seed(experiment, infos):
    """The sinusoid table pairing our seed s with the original's np.random.seed(s) run (same training tasks)."""
    metric = experiment.metric
    paired = {o.seed: o for o in ORIGINAL.get(experiment.name, ()) if o.seed is not None}
    out = [f'### {experiment.name} seed by seed', '',
           f'Our seed s (main.py --seed=s) draws its training tasks from `np.random.RandomState(s)` in the original\'s '
           f'order, so it meta-trains on exactly the tasks of the original code run with `np.random.seed(s)` '
           f'(only the initial weights differ); the 600 test tasks are the same for all (`np.random.seed(1)`). '
           f'Median and tasks with MSE > {DIVERGED_MSE:g} or not finite: over the test tasks, from the `.pkl`. '
           f'Original: {", ".join(sorted({o.source for o in paired.values()})) or "no seeded run"} (— where the '
           f'notes give no figure).', '',
           '| seed | inner steps | ours: mean ± 95% CI | original: mean | ours: median | original: median '
           '| ours: diverged tasks | original: diverged tasks |',
           '|---|---|---|---|---|---|---|---|']
    for info in infos:
        if info['mean'] is None:
            out.append(f'| {info["seed"]} | — | not tested | — | — | — | — | — |')
            continue
        o = paired.get(info['seed'])
        rows = info.get('rows')
        median = diverged = None
        if rows is not None and rows.shape[1] == len(info['mean']):
            median, diverged, _ = task_stats(rows)
        for j in [0] + seed_steps(experiment):
            if j >= len(info['mean']):
                continue
            out.append(f'| {info["seed"]} | {j} | {fmt(metric, info["mean"][j])} ± {fmt(metric, info["ci95"][j])} | '
                       f'{o.mean.get(j, "—") if o else "—"} | '
                       f'{"—" if median is None else fmt(metric, float(median[j]))} | '
                       f'{o.median.get(j, "—") if o else "—"} | '
                       f'{"—" if diverged is None else int(diverged[j])} | {o.diverged.get(j, "—") if o else "—"} |')
    out.append('')
    return out


def session_wall(s):
    """Seconds a session ran: to its recorded end, or for one killed (or still running) to when it was last seen
    alive (reproduce.py's heartbeat); None if neither is recorded."""
    return s['wall_s'] if s.get('wall_s') is not None else s.get('wall_s_so_far')


def session_line(s):
    if s.get('wall_s') is not None:
        wall = duration(s['wall_s'])
    elif s.get('last_seen'):
        wall = f'no end recorded (killed or running), last seen {s["last_seen"]}, {duration(s["wall_s_so_far"])} in'
    else:
        wall = 'no end recorded (interrupted or running)'
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
    out = [f'### {run_label(experiment, info)}: {experiment.title}', '']
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
        out.append('- Training wall time (all sessions; a killed one until it was last seen): '
                   + duration(info['train_wall']))
    for s in r.get('sessions', []):
        out.append('- ' + session_line(s))
    if r.get('machine'):
        out.append('- Machine: ' + machine_text(r['machine']))
    if experiment.paper and not experiment.name.startswith(('sine', 'omniglot', 'mini')):   # not Finn et al.'s
        numbers = ', '.join(f'{p.mean}' + ('' if p.ci is None else f' ± {p.ci}') + f' at {p.step} inner steps'
                            for p in experiment.paper)
        out.append(f'- Paper: {experiment.paper_source}: {numbers}'
                   + (f' (± is the {experiment.paper_spread})' if experiment.paper_spread else ''))
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
        median, diverged, kept = task_stats(rows)
        out.append('| median over tasks | ' + ' | '.join(fmt(metric, float(v)) for v in median) + ' |')
        out.append(f'| tasks with MSE > {DIVERGED_MSE:g} or not finite | '
                   + ' | '.join(str(int(v)) for v in diverged) + ' |')
        out.append('| mean over the other tasks | ' + ' | '.join(fmt(metric, v) for v in kept) + ' |')
        out.append('')
        out.append(f'Per-task values from the `.pkl` beside the CSV ({len(rows)} tasks; nan counts as the largest '
                   f'in the median). A task is counted when its MSE is above {DIVERGED_MSE:g} or not finite, the '
                   f'rule of `../shared/golden/tf1/sinusoid_70k.md` for the original code: before adaptation these '
                   f'are tasks of large amplitude (a sinusoid of amplitude 5 predicted as 0 has an MSE of 12.5), '
                   f'after it mostly tasks whose error grew in the inner loop.')
    out.append('')
    return out


def collect_runs(experiment, logdir):
    """[info] of one experiment: its run in `<logdir>/<name>/` and its runs over seeds in `seed<s>/`, in seed
    order; [] if it has no folder. The folder itself counts as a run unless it holds only seed folders."""
    folder = os.path.join(logdir, experiment.name)
    if not os.path.isdir(folder):
        return []
    seeds = reproduce.seeds_run(folder)
    plain = not seeds or any(not reproduce.SEED_DIR.match(n) for n in os.listdir(folder))
    return ([collect(experiment, logdir)] if plain else []) + [collect(experiment, logdir, s) for s in seeds]


def metric_of(exp_dir, mean):
    """'accuracy' or 'mse' for a run outside the registry: classification runs log
    `metatrain_Pre-update_accuracy` in their event files; without event files, accuracy when every
    mean lies in [0, 1] (an MSE before adaptation is far above 1 for any model main.py trains)."""
    events = glob.glob(os.path.join(exp_dir, 'events.out.tfevents.*'))
    if events:
        for name in events:
            with open(name, 'rb') as f:
                if b'Pre-update_accuracy' in f.read():
                    return 'accuracy'
        return 'mse'
    return 'accuracy' if all(0 <= v <= 1 for v in mean) else 'mse'


def other_runs(logdir):
    """[(exp_dir, csv path)] of the test CSVs in `logdir` and its sub-folders, outside the registry's
    `<logdir>/<name>/` folders (a plain main.py logdir: `<logdir>/<exp_string>/test_*.csv`), sorted."""
    found = []
    for root, dirs, files in os.walk(logdir):
        if os.path.normpath(root) == os.path.normpath(logdir):
            dirs[:] = [d for d in dirs if d not in reproduce.EXPERIMENTS]
        dirs.sort()
        found += [(root, os.path.join(root, f)) for f in sorted(files) if TEST_CSV.match(f)]
    return found


def other_section(logdir, runs):
    """The "Other runs" section: a row per test CSV found by other_runs, then each one's whole test curve."""
    base = os.path.dirname(os.path.normpath(logdir)) or '.'
    out = ['## Other runs', '',
           'Test results of main.py runs outside the registry\'s folders (any `--logdir`): no paper number to '
           'compare with. Mean ± 95% CI over the test tasks; accuracy in %.', '',
           '| run folder | test file | iterations (latest checkpoint) | before adaptation | after 1 step | '
           'after the last step |', '|---|---|---|---|---|---|']
    curves = []
    for exp_dir, path in runs:
        mean, ci95 = read_csv(path)
        metric = metric_of(exp_dir, mean)
        latest, _ = latest_checkpoint_iterations(exp_dir)
        cells = [f'{fmt(metric, mean[j])} ± {fmt(metric, ci95[j])} ({j})' if j < len(mean) else '—'
                 for j in (0, 1, len(mean) - 1)]
        out.append(f'| `{os.path.relpath(exp_dir, base)}` | {os.path.basename(path)} | {latest} | '
                   + ' | '.join(cells) + ' |')
        unit = 'accuracy (%)' if metric == 'accuracy' else 'MSE'
        curves += [f'### {os.path.relpath(path, base)}', '', f'Test {unit} after each number of inner steps, '
                   f'mean ± 95% CI:', '', '| inner steps | ' + ' | '.join(str(i) for i in range(len(mean))) + ' |',
                   '|---' * (len(mean) + 1) + '|',
                   '| ours | ' + ' | '.join(f'{fmt(metric, m)} ± {fmt(metric, c)}' for m, c in zip(mean, ci95)) + ' |',
                   '']
    return out + [''] + curves


def report(logdir):
    """The whole Markdown document for the experiments under `logdir`."""
    runs = {name: collect_runs(e, logdir) for name, e in reproduce.EXPERIMENTS.items()}
    done = {name: infos for name, infos in runs.items() if infos}
    others = other_runs(logdir)
    machines = []
    for infos in done.values():
        for info in infos:
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
            'original protocol; Reptile\'s --protocol=reptile: 10000) from main.py\'s test CSV, after the number '
            'of inner steps the paper reports (learners without inner steps: 0) '
            '(sinusoid settings the paper shows only in figures: 1, 5 and 10 steps as its table, the oracle '
            'before adaptation; accuracy in %, mean squared error for sinusoid). Paper: Finn et al. 2017, ± its '
            '95% CI; for the other learners their own paper (named in each run\'s section and in Settings), '
            '± as published: a 95% CI except where marked † (MAML++: std over 3 seeds). '
            'Difference: ours − paper. Within CI: |difference| ≤ our CI + the paper\'s CI, i.e. the '
            'intervals overlap; * where the paper gives no interval (only our CI counts). Iterations: '
            'trained when tested / the paper\'s count. Train wall: the training sessions\' wall times added '
            'up (interrupted ones included, killed ones until last seen alive, TensorFlow start-up and compilation '
            'too). An experiment run over '
            'seeds has a row per seed (`NAME/seed<s>`) and one with the mean ± standard deviation (ddof 1) of '
            'the seeds\' means (see Over seeds).', '',
            '| experiment | inner steps | ours | paper | difference | within CI | iterations | train wall |',
            '|---|---|---|---|---|---|---|---|']
    seeded = []
    for name, infos in done.items():
        e = reproduce.EXPERIMENTS[name]
        for info in infos:
            out += summary_rows(e, info)
        seeds = [i for i in infos if i['seed'] is not None]
        if seeds:
            out += seeds_summary_rows(e, seeds)
            seeded.append((e, seeds))
    missing = [name for name, infos in runs.items() if not infos]
    out.append('')
    if missing:
        out += ['Not run: ' + ', '.join(missing) + '.', '']
    if seeded:
        out += over_seeds(seeded)
    if others:
        out += other_section(logdir, others)
    out += ['## Settings', '', 'The paper\'s hyperparameters; where the original\'s usage notes differ; the '
            'other learners\' papers and how they are set up here:', '']
    out += ['- ' + note for note in reproduce.NOTES]
    out += ['', '## Runs', '']
    for name, infos in done.items():
        for info in infos:
            out += details(reproduce.EXPERIMENTS[name], info, logdir)
    return '\n'.join(out).rstrip('\n') + '\n'


# ------------------------------------------------------------------------------------ CLI
def fail(message, status=2):
    reproduce.fail(message, status, PROG)


def main(argv=None):
    p = reproduce._Parser(prog=PROG, description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog=__doc__[__doc__.index('\n') + 1:])
    p.add_argument('--logdir', default='logs', help='the folder with one <experiment name>/ per run')
    p.add_argument('--out', help=f'Markdown file to write (default <logdir>/{REPORT_FILE}; -: standard output); '
                                 f'docs/RESULTS.md only when named here')
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if not os.path.isdir(args.logdir):
        p.error(f'--logdir={args.logdir} is not a folder')
    try:
        text = report(args.logdir)
    except (UsageError, reproduce.UsageError) as e:
        fail(e)
    if args.out is None:
        args.out = os.path.join(args.logdir, REPORT_FILE)
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
