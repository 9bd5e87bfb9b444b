"""weights/: the final weights of the finished reproduction runs (issue 12), one folder per registry entry laid out as
reproduce.py's (`weights/<name>/<exp_string>/model<itr>.*` and the `checkpoint` state file), restore and evaluate."""
import importlib.util
import os
import re
import shutil

import numpy as np
import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location('reproduce', os.path.join(REPO, 'scripts', 'reproduce.py'))
reproduce = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)

WEIGHTS = os.path.join(REPO, 'weights')
PUBLISHED = sorted(d for d in os.listdir(WEIGHTS) if os.path.isdir(os.path.join(WEIGHTS, d)))
TASKS = 20          # test tasks of the check (the published numbers are over 600)


def _exp_dir(name, logdir_root=WEIGHTS):
    e = reproduce.EXPERIMENTS[name]
    return reproduce.exp_dir(reproduce.parse_config(reproduce.train_flags(e, os.path.join(logdir_root, name))))


def test_weights_are_published():
    assert PUBLISHED, 'weights/ holds no run'


@pytest.mark.parametrize('name', PUBLISHED)
def test_a_published_run_is_one_finished_checkpoint_of_its_registry_entry(name):
    """The folder is a registry entry's, its one checkpoint is the last iteration of the entry's full run and the
    state file names it (so reproduce.py finds the run trained and only tests it); the README lists it."""
    import main
    assert name in reproduce.EXPERIMENTS
    directory = _exp_dir(name)
    (index,) = [f for f in os.listdir(directory) if f.endswith('.index')]
    iterations = int(re.fullmatch(r'model(\d+)\.index', index).group(1)) + 1
    assert iterations == reproduce.iterations_of(reproduce.parse_config(reproduce.train_flags(
        reproduce.EXPERIMENTS[name], 'L')))
    assert main.latest_checkpoint(directory) == os.path.join(directory, index[:-len('.index')])
    with open(os.path.join(WEIGHTS, 'README.md')) as f:
        assert f'`{name}`' in f.read()


@pytest.mark.parametrize('name', PUBLISHED)
def test_published_weights_restore_and_classify(name, omniglot_dir, tmp_path, monkeypatch):
    """main.py tests a copy of the weights as reproduce.py would (their flags, --train=False --test_set=True) on
    TASKS test tasks: far above chance after 3 inner steps (the published figure is over 600 tasks)."""
    import main
    shutil.copytree(os.path.join(WEIGHTS, name), tmp_path / name)
    e = reproduce.EXPERIMENTS[name]
    flags = reproduce.test_flags(e, reproduce.train_flags(e, str(tmp_path / name), data_dir=omniglot_dir))
    config = reproduce.parse_config(flags + ['--xla=False'])
    monkeypatch.setattr(main, 'NUM_TEST_POINTS', TASKS)
    rows = main.test(main.prepare(config))
    assert rows.shape == (TASKS, 11)
    assert np.mean(rows[:, 3]) > 0.7, np.mean(rows, 0)
