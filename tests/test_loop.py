"""--steps_per_execution (loop.py): several meta-iterations per compiled call change nothing but the speed:
the same batches, weights, optimizer and learner state, summaries, prints and checkpoints as one call each."""
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

import main
from infra import actions
from config import Config
from test_learners import _variables

# Intervals that put every kind of chunk boundary into a short run: summaries (a chunk starts there), saves,
# prints and validation (a chunk ends there).
INTERVALS = main.Intervals(summary=10, save=25, print=20, test_print=30)


def _events(exp_dir):
    scalars = []
    for path in glob.glob(os.path.join(exp_dir, 'events.out.tfevents.*')):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            scalars += [(event.step, v.tag, float(tf.make_ndarray(v.tensor))) for v in event.summary.value]
    return sorted(scalars)


def _train(config, capsys):
    e = main.prepare(config)
    main.train(e, INTERVALS)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if not line.startswith('[maml-tf2]')]   # timings differ
    saved = sorted(os.path.basename(p) for p in glob.glob(os.path.join(e.exp_dir, 'model*.index')))
    return _variables(e), _events(e.exp_dir), lines, saved


def _assert_same_run(config, tmp_path, capsys, steps=7):
    one = _train(config.replace(logdir=str(tmp_path / 'one')), capsys)
    chunked = _train(config.replace(logdir=str(tmp_path / 'chunked'), steps_per_execution=steps), capsys)
    state, events, lines, saved = one
    assert chunked[0].keys() == state.keys()
    for k in state:
        if k == 'data':
            assert chunked[0][k] == state[k]
        else:
            np.testing.assert_array_equal(chunked[0][k], state[k], err_msg=k)
    assert chunked[1] == events and len(events) > 5
    assert chunked[2] == lines and any(line.startswith('Iteration 20') for line in lines)
    assert chunked[3] == saved


def test_sinusoid_chunks_give_the_same_run_under_xla(tmp_path, capsys):
    """The compiled loop runs the same XLA step: every variable, summary, print and checkpoint to the last bit."""
    _assert_same_run(Config(datasource='sinusoid', metatrain_iterations=64, seed=2, update_lr=0.01,
                            meta_batch_size=4), tmp_path, capsys)


@pytest.mark.parametrize('method, extra', [
    pytest.param('maml', {}, marks=pytest.mark.slow),       # 3 minutes of XLA compiles
    ('reptile', dict(inner_iters=2, inner_batch=3, train_shots=2, eval_iters=2, eval_batch=3)),
    pytest.param('protonet', dict(train_classes=4), marks=pytest.mark.slow),
    # MSL switches off and the order switches to second at epoch 2 (iteration 20), inside a chunk
    pytest.param('maml', dict(multi_step_loss=True, multi_step_loss_epochs=2, first_order_epochs=1,
                              iterations_per_epoch=10, num_updates=2), marks=pytest.mark.slow, id='mamlpp'),
])
def test_classification_chunks_give_the_same_run(method, extra, tmp_path, capsys, omniglot_dir, monkeypatch):
    monkeypatch.setenv('MAML_TF2_CACHE', str(tmp_path / 'cache'))
    config = Config(datasource='omniglot', data_dir=omniglot_dir, method=method, num_classes=3, update_batch_size=1,
                    meta_batch_size=2, num_filters=4, metatrain_iterations=34, seed=3,
                    num_train_classes=30, num_val_classes=10, **extra)
    _assert_same_run(config, tmp_path, capsys, steps=4)


class _Experiment:
    def __init__(self, **config):
        self.run_config, self.start_itr = Config(**config), 0


def _chunks(e, total, classification, intervals):
    """[(itr, chunk size)] as train()'s actions end the chunks (infra/actions.py Steps.chunk_size)."""
    from types import SimpleNamespace
    e.model = SimpleNamespace(classification=classification, trains_on_tasks=True, metatrain_steps=None)
    e.checkpointer, e.restored_from = SimpleNamespace(kept=[]), None
    val = iter(()) if classification else None
    first = actions.FirstIteration(e)
    summaries = actions.Summaries(e, intervals.summary, None, val)
    todo = [first, summaries, actions.Prints(e, intervals.print, total, None, None, None, first),
            actions.Checkpoints(e, intervals.save), actions.Validation(e, intervals.test_print, val, summaries)]
    steps = actions.Steps(e, total, None, todo, None)
    itr, sizes = e.start_itr, []
    while itr < total:
        sizes.append((itr, steps.chunk_size(itr)))
        itr += sizes[-1][1]
    return sizes


def test_chunks_start_at_summaries_and_end_where_the_weights_are_read():
    iv = main.Intervals(summary=100, save=1000, print=1000, test_print=5000)
    e = _Experiment(steps_per_execution=100, metatrain_iterations=1300)
    sizes = _chunks(e, 1300, False, iv)
    assert sizes[:3] == [(0, 1), (1, 99), (100, 100)]              # the first iteration alone: its timing
    assert (900, 100) in sizes and (1000, 1) in sizes and (1001, 99) in sizes   # saved after 1000
    assert sum(n for _, n in sizes) == 1300 and all(itr % 100 == 0 for itr, _ in sizes if itr not in (1, 1001))
    iv = main.Intervals(summary=100, save=1000, print=100, test_print=500)
    e = _Experiment(steps_per_execution=40, metatrain_iterations=300, pretrain_iterations=0)
    e.start_itr = 101
    assert _chunks(e, 300, True, iv) == [(101, 1), (102, 40), (142, 40), (182, 18), (200, 1), (201, 40),
                                         (241, 40), (281, 19)]   # classification: metaval after each summary


def test_steps_per_execution_must_be_positive_and_compiled():
    with pytest.raises(main.UsageError, match=r'--steps_per_execution=0 must be >= 1'):
        main.check_config(Config(steps_per_execution=0))
    with pytest.raises(main.UsageError, match=r'--steps_per_execution=10 needs --xla'):
        main.check_config(Config(steps_per_execution=10, xla=False))
