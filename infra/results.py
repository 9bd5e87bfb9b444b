"""The test's result files: the original's `test_ubs<K>_stepsize<lr>.{csv,pkl}` in the experiment folder, and
beside them `results/<val|test>_<checkpoint>_ubs<K>_stepsize<lr>.{csv,pkl,json}`, one self-describing triple
per evaluated checkpoint and split (the json: split, checkpoint, iterations, tasks, statistics, flags,
commit, date). Every file is written under a temporary name and renamed into place.
"""
import csv
import dataclasses
import datetime
import json
import os
import pickle
import socket
import subprocess

import numpy as np

import config as config_lib
from infra.checkpoints import atomic_write
from infra.checks import UsageError

RESULTS_DIR = 'results'     # in the experiment folder: one self-describing result triple per test run


def test_file_prefix(config):
    """The original's result file name (no extension): exp_dir/test_ubs<K>_stepsize<lr>."""
    return os.path.join(config.logdir, config_lib.exp_string(config),
                        'test_ubs' + str(config.update_batch_size) + '_stepsize' + str(float(config.update_lr)))


def results_prefix(experiment):
    """The split- and checkpoint-specific result name (no extension), beside the original's:
    `exp_dir/results/<val|test>_<checkpoint>_ubs<K>_stepsize<lr>` (checkpoint: `model<itr>`, or
    `tf1_model<itr>` for --tf1_checkpoint), so no evaluation overwrites another's."""
    c = experiment.config
    source = os.path.basename(experiment.restored_from or 'untrained')
    if c.tf1_checkpoint:
        source = 'tf1_' + source
    return os.path.join(experiment.exp_dir, RESULTS_DIR, f'{"test" if c.test_set else "val"}_{source}_ubs'
                        f'{c.update_batch_size}_stepsize{float(c.update_lr)}')


def git_commit():
    """The repository's HEAD commit (with '+dirty' if tracked files changed), or None."""
    repo = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=repo, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=repo,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode:
        return None
    return head.stdout.strip() + ('+dirty' if dirty.stdout.strip() else '')


def rows_table(metric, means, ci95):
    """Readable lines `step j: mean ± ci95` (accuracies in %); one 'query' line when there are no inner steps."""
    lines = []
    for j, (m, c) in enumerate(zip(means, ci95)):
        label = 'query' if len(means) == 1 else ('pre-update' if j == 0 else f'step {j}')
        value = f'{100 * m:6.2f}% ± {100 * c:.2f}%' if metric == 'accuracy' else f'{m:.4f} ± {c:.4f}'
        lines.append(f'[maml-tf2]   {label:>10}: {value}')
    return lines


def write(experiment, split, num_tasks, rows, means, stds, ci95, wall):
    """Writes the test's files and prints the readable table: the original's `test_file_prefix` .csv (header
    `update0..updateT`, then means, stds, 95% CIs) and .pkl ({'mses': rows [tasks, T+1]}), the same pair under
    `results_prefix` and its .json record. Raises UsageError when a file cannot be written."""
    from infra.actions import duration
    e, rc = experiment, experiment.run_config
    prefix = test_file_prefix(e.config)
    results = results_prefix(e)
    try:   # exists unless the weights came from --tf1_checkpoint
        os.makedirs(os.path.dirname(results), exist_ok=True)
    except OSError as err:
        raise UsageError(f'cannot create {os.path.dirname(results)} ({err.strerror}); choose another --logdir') from None

    def write_csv(f):
        writer = csv.writer(f, delimiter=',')
        writer.writerow(['update' + str(i) for i in range(len(means))])
        writer.writerow(means)
        writer.writerow(stds)
        writer.writerow(ci95)
    metric = 'accuracy' if e.model.classification else 'mse'
    nonfinite = (~np.isfinite(rows)).sum(0)
    iterations = e.start_itr
    if e.config.tf1_checkpoint and e.restored_from:
        from infra import tf1_checkpoint as tf1_lib
        iterations = tf1_lib.iterations_done(e.restored_from)
    record = {
        'split': split, 'checkpoint': os.path.abspath(e.restored_from) if e.restored_from else None,
        'iterations_trained': iterations, 'num_tasks': num_tasks, 'inner_steps': len(means) - 1, 'metric': metric,
        'columns': ['update' + str(i) for i in range(len(means))], 'means': means.tolist(), 'stds': stds.tolist(),
        'ci95': ci95.tolist(), 'nonfinite_tasks': nonfinite.tolist(), 'files': {
            'csv': results + '.csv', 'pkl': results + '.pkl', 'original_csv': prefix + '.csv',
            'original_pkl': prefix + '.pkl'},
        'config': dataclasses.asdict(e.config), 'run_config': dataclasses.asdict(rc), 'method': rc.method,
        'git_commit': git_commit(), 'date': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
        'host': socket.gethostname()}
    existed = os.path.exists(results + '.json')
    try:
        for path in (prefix, results):
            atomic_write(path + '.pkl', lambda f: pickle.dump({'mses': rows}, f), binary=True)
            atomic_write(path + '.csv', write_csv)
        atomic_write(results + '.json', lambda f: f.write(json.dumps(record, indent=1, allow_nan=True) + '\n'))
    except OSError as err:
        raise UsageError(f'cannot write the results into {e.exp_dir} ({err.strerror}); free space (or fix the '
                         f'folder) and run the test again') from None

    what = 'accuracy' if metric == 'accuracy' else 'mean squared error'
    source = e.restored_from or 'untrained weights'
    print(f'[maml-tf2] {split} {what} over {num_tasks} tasks (mean ± 95% CI), {os.path.basename(source)} '
          f'({iterations} iterations trained), tested in {duration(wall)}:')
    for line in rows_table(metric, means, ci95):
        print(line)
    if nonfinite.any():
        print(f'[maml-tf2] warning: {int(nonfinite.max())} of {num_tasks} tasks gave nan/inf (so do the means '
              f'above); the per-task rows are in {results}.pkl')
    print(f'[maml-tf2] wrote {results}.{{csv,pkl,json}}' + (' (replacing an earlier evaluation of the same '
                                                             'checkpoint)' if existed else '')
          + f' and the original\'s {prefix}.{{csv,pkl}}', flush=True)
