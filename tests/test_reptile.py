"""Reptile: golden parity with openai/supervised-reptile, the checker on files of other settings, the update rule
(one task, one SGD step, epsilon 1 = one SGD step), the epsilon schedule and mini-batching, and bit-identical
resume."""
import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO, SHARED, _require

sys.path.insert(0, os.path.join(REPO, 'scripts'))

import golden_reptile  # noqa: E402
from config import Config  # noqa: E402
from learners.reptile import Reptile, meta_step_size, mini_batch_indices  # noqa: E402

GOLDEN = os.path.join(SHARED, 'golden', 'reptile', 'reptile_omniglot_5w1s_step.npz')


def test_golden_parity(tmp_path):
    """The original's one meta-iteration and evaluation, task by task and chained, within the README's
    tolerances; --out writes every key of the file's value arrays."""
    path = _require(GOLDEN)
    out = str(tmp_path / 'ours.npz')
    ok, lines = golden_reptile.check(path, out)
    assert ok, '\n'.join(line for line in lines if line.startswith('FAIL'))
    ours, golden = dict(np.load(out)), dict(np.load(path))
    for key in [k for k in golden if k.startswith(('task_end/', 'after/', 'eval/adapted/'))] + [
            'eval/query_logits', 'eval/predictions', 'train_losses', 'eval/losses']:
        assert ours[key].shape == golden[key].shape and ours[key].dtype == golden[key].dtype, key
    np.testing.assert_array_equal(ours['eval/predictions'], golden['eval/predictions'])   # [2 1 2 2 0]
    assert ours['after/beta1_power'].dtype == np.int32 and ours['after/beta1_power'] == 0


def test_chained_rows_count_only_while_the_chain_keeps_the_golden_losses():
    """After a ReLU tie goes the other way in the port's own chained iteration, its after/* are information."""
    golden = np.ones([5, 5, 10])
    assert golden_reptile.chain_split(golden * (1 + 5e-5), golden) == ''
    ours = golden.copy()
    ours[3, 3, 7] += 4e-3
    assert golden_reptile.chain_split(ours, golden) == 'the chain left the golden losses at task 3 step 3'


def _synthetic_golden(path, classes, shots, train_shots, inner_batch, inner_iters, lr, eval_batch, eval_iters,
                      meta_batch, seed):
    """Writes a file in the golden format computed by the port itself, for settings no golden file has
    (random 0/1 28x28 images): the checker must reproduce it from the file alone."""
    rs = np.random.RandomState(seed)
    config = Config(method='reptile', protocol='reptile', datasource='omniglot', num_classes=classes,
                    update_batch_size=shots, update_lr=lr, xla=False, seed=seed)
    model = Reptile(784, classes, eval_iters, config)
    state = model.state_variables()
    trainable = list(model.weights)
    moving = [k.rsplit('/', 1)[0] + s for k in trainable if k.endswith('/gamma') for s in ('/moving_mean',
                                                                                            '/moving_variance')]
    moving_init = golden_reptile._moving_stats(model, moving)
    d = {'config_json': json.dumps(dict(classes=classes, train_shots=train_shots, shots=shots,
                                        inner_batch=inner_batch, inner_iters=inner_iters, meta_batch=meta_batch,
                                        meta_step=1.0, meta_step_final=0.0, learning_rate=lr,
                                        eval_batch=eval_batch, eval_iters=eval_iters, weight_decay=1.0,
                                        replacement=False, transductive=False)),
         'trainable_names_json': json.dumps(trainable),
         'global_names_json': json.dumps(trainable + moving + [k for k in state if k not in trainable])}
    d.update({'init/' + k: v.numpy() for k, v in state.items()})
    d.update({'init/' + k: v for k, v in moving_init.items()})
    d['train_images'] = (rs.rand(meta_batch, inner_iters, inner_batch, 28, 28) > 0.3).astype(np.float32)
    d['train_labels'] = rs.randint(0, classes, (meta_batch, inner_iters, inner_batch)).astype(np.int32)
    losses, ends = model.train_on_batches(d['train_images'].reshape(meta_batch, inner_iters, inner_batch, 784),
                                          d['train_labels'], 1.0, record=True)
    d['train_losses'] = losses.numpy()
    d.update({'task_end/' + k: v.numpy() for k, v in ends.items()})
    d.update({'after/' + k: v.numpy() for k, v in state.items()})
    support = (rs.rand(classes * shots, 28, 28) > 0.3).astype(np.float32)
    query = (rs.rand(classes, 28, 28) > 0.3).astype(np.float32)
    d.update({'eval/support_images': support, 'eval/support_labels': np.repeat(np.arange(classes), shots),
              'eval/query_images': query, 'eval/query_labels': np.arange(classes).astype(np.int32)})
    index = np.stack([rs.permutation(classes * shots)[:eval_batch] for _ in range(eval_iters)])
    d['eval/batch_images'], d['eval/batch_labels'] = support[index], d['eval/support_labels'][index].astype(np.int32)
    out, eval_losses = model.adapt_on_batches(support.reshape(-1, 784), query.reshape(-1, 784),
                                              d['eval/batch_images'].reshape(eval_iters, eval_batch, 784),
                                              d['eval/batch_labels'], every_step=False)
    d['eval/losses'], d['eval/query_logits'] = eval_losses.numpy(), out[0].numpy()
    d['eval/predictions'] = np.argmax(d['eval/query_logits'], -1)
    d['eval/pred_logits_full'] = model.predict(support.reshape(-1, 784), query.reshape(-1, 784), False).numpy()
    d['eval/transductive_logits'] = model.predict(support.reshape(-1, 784), query.reshape(-1, 784), True)[0].numpy()
    d.update({'eval/adapted/' + k: v.numpy() for k, v in state.items()})
    for prefix in ('after/', 'eval/adapted/'):
        d.update({prefix + k: v for k, v in moving_init.items()})
    d.update({'task_end/' + k: np.stack([v] * meta_batch) for k, v in moving_init.items()})
    np.savez(path, **d)
    return d


@pytest.mark.slow
def test_checker_reads_settings_from_the_file(tmp_path):
    """3-way 2-shot, train shots 4, inner batch 6 x 3 iterations, lr 2e-3, 2 tasks, eval 4 x 7, seed 3: the
    checker reproduces the file; the same file claiming another learning rate fails."""
    path = str(tmp_path / 'synthetic.npz')
    d = _synthetic_golden(path, classes=3, shots=2, train_shots=4, inner_batch=6, inner_iters=3, lr=2e-3,
                          eval_batch=4, eval_iters=7, meta_batch=2, seed=3)
    ok, lines = golden_reptile.check(path)
    assert ok, '\n'.join(lines)
    cfg = json.loads(d['config_json'])
    cfg['learning_rate'] = 1e-3
    d['config_json'] = json.dumps(cfg)
    wrong = str(tmp_path / 'wrong_lr.npz')
    np.savez(wrong, **d)
    ok, lines = golden_reptile.check(wrong)
    assert not ok and any(line.startswith('FAIL train_losses[task 0]') for line in lines)


@pytest.mark.parametrize('protocol', ['reptile', 'maml'])
def test_one_task_one_sgd_step_epsilon_one_is_an_sgd_step(protocol):
    """Meta-batch 1, one inner step of plain SGD on the whole task, epsilon 1: theta - lr * grad of the summed
    per-example cross-entropy (`inner_sgd`, the reference's --sgd)."""
    config = Config(method='reptile', protocol=protocol, datasource='omniglot', num_classes=3,
                    update_batch_size=2, inner_sgd=True, inner_iters=1, inner_batch=6, meta_step=1.0,
                    meta_step_final=1.0, update_lr=0.05, num_filters=8, xla=False, seed=1)
    model = Reptile(784, 3, 1, config)
    rs = np.random.RandomState(0)
    inputa = tf.constant(rs.rand(1, 6, 784), tf.float32)
    labels = np.array([0, 1, 2, 0, 1, 2])
    labela = tf.constant(np.eye(3)[labels][None], tf.float32)
    before = {k: v.numpy() for k, v in model.weights.items()}
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model.example_losses(model.forward(inputa), labels[None]))
    grads = tape.gradient(loss, model.weights)
    model.metatrain_step(inputa, labela, inputa[:, :3], labela[:, :3])
    pre_bn = {'conv2d' + s + '/bias' for s in ('', '_1', '_2', '_3')} | {'b1', 'b2', 'b3', 'b4'}
    for k, v in model.weights.items():
        if k in pre_bn:   # batch norm cancels them: their gradient is rounding noise of the summation order
            continue
        np.testing.assert_allclose(v.numpy(), before[k] - 0.05 * grads[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
        assert np.any(v.numpy() != before[k]) or not np.any(grads[k].numpy()), k
    assert 'inner_optimizer' not in model.checkpoint_items()


def test_meta_step_schedule_and_mini_batches():
    """epsilon linear from meta_step to meta_step_final over the run (the reference's train.py); mini-batches
    without replacement: every run of num_examples consecutive indices is a permutation, batches span shuffles."""
    config = Config(meta_step=1.0, meta_step_final=0.0, metatrain_iterations=1500)
    assert [float(meta_step_size(i, config)) for i in (0, 750, 1500)] == [1.0, 0.5, 0.0]
    index = mini_batch_indices(tf.constant([5, 7], tf.int64), 2, 10, 4, 7).numpy()   # 28 of 10 examples
    assert index.shape == (2, 7, 4)
    for task in index.reshape(2, 28):
        for start in (0, 10):
            assert sorted(task[start:start + 10]) == list(range(10))
        assert len(set(task[20:])) == 8
    assert not np.array_equal(index[0], index[1])


def _tiny(xla, seed=4):
    config = Config(method='reptile', protocol='maml', datasource='omniglot', num_classes=3, update_batch_size=1,
                    train_shots=3, inner_iters=2, inner_batch=4, meta_step=1.0, meta_step_final=0.0,
                    metatrain_iterations=10, eval_iters=3, eval_batch=3, num_filters=8, xla=xla, seed=seed)
    return Reptile(784, 3, 3, config)


def _batch(i):
    rs = np.random.RandomState(100 + i)
    labels = np.tile(np.eye(3, dtype=np.float32), (2, 3, 1))
    return (tf.constant(rs.rand(2, 9, 784), tf.float32), tf.constant(labels),
            tf.constant(rs.rand(2, 3, 784), tf.float32), tf.constant(np.tile(np.eye(3, dtype=np.float32),
                                                                             (2, 1, 1))))


def _state(model):
    return {**{k: v.numpy() for k, v in model.state_variables().items()},
            'meta_iteration': model.meta_iteration.numpy(), 'rng_seed': model.rng_seed.numpy()}


def test_resume_is_bit_identical_and_evaluate_changes_nothing(tmp_path):
    """Four meta-iterations in one go equal two, a checkpoint of checkpoint_items(), a fresh learner of another
    seed restored from it and two more, bit for bit; `evaluate` leaves the state as it found it."""
    straight = _tiny(False)
    for i in range(4):
        straight.metatrain_step(*_batch(i))
    first = _tiny(False)
    for i in range(2):
        first.metatrain_step(*_batch(i))
    prefix = tf.train.Checkpoint(**first.checkpoint_items()).save(str(tmp_path / 'ckpt'))
    resumed = _tiny(False, seed=9)
    tf.train.Checkpoint(**resumed.checkpoint_items()).restore(prefix).assert_consumed()
    for i in range(2, 4):
        resumed.metatrain_step(*_batch(i))
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys() and int(a['meta_iteration']) == 4
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    out = resumed.evaluate(*_batch(7))
    assert out.total_losses2.shape == [3] and out.total_accuracies2.shape == [3] and out.outputbs.shape == [3, 2, 3, 3]
    again = resumed.evaluate(*_batch(7))
    np.testing.assert_array_equal(out.total_losses2.numpy(), again.total_losses2.numpy())
    for k, v in _state(resumed).items():
        np.testing.assert_array_equal(v, b[k], err_msg=k)
