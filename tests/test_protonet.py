"""Prototypical Networks: the metric against hand computations, float64 finite differences, the learning-rate
schedule, batch-norm running statistics, and a bit-identical resume."""
import numpy as np
import pytest
import tensorflow as tf

from learners import protonet
from config import Config
from learners.protonet import ProtoNet, prototypes, protonet_logits, squared_distances

F64 = tf.float64


def _config(**kw):
    base = dict(datasource='omniglot', num_classes=2, update_batch_size=2, num_filters=4, seed=5, xla=False)
    base.update(kw)
    return Config(**base)


def _episode(rng, b=1, n=2, k=2, q=2, dim=256):
    """B episodes with the classes in shuffled row order (as the data generator delivers them)."""
    def rows(m):
        labels = np.stack([np.eye(n)[rng.permutation(np.repeat(np.arange(n), m))] for _ in range(b)])
        return tf.constant(rng.uniform(size=(b, n * m, dim)), tf.float32), tf.constant(labels, tf.float32)
    return (*rows(k), *rows(q))


def test_prototypes_and_logits_against_a_hand_computation():
    support = tf.constant([[[1., 2.], [0., 0.], [3., 4.], [2., -2.]]], F64)   # classes 1, 0, 1, 0
    labels = tf.constant([[[0, 1], [1, 0], [0, 1], [1, 0]]], F64)
    query = tf.constant([[[1., 1.], [2., 3.], [0., -1.]]], F64)
    np.testing.assert_allclose(prototypes(support, labels).numpy(), [[[1., -1.], [2., 3.]]])
    # squared distances to c0 = (1, -1), c1 = (2, 3) of (1, 1), (2, 3), (0, -1)
    expected = [[[4., 5.], [17., 0.], [1., 20.]]]
    np.testing.assert_allclose(squared_distances(query, prototypes(support, labels)).numpy(), expected)
    np.testing.assert_allclose(protonet_logits(support, labels, query).numpy(), -np.array(expected))
    # the loss is the mean over queries of -log softmax(-d)[true class]
    labelb = tf.constant([[[1, 0], [0, 1], [1, 0]]], F64)
    d = np.array(expected[0])
    nll = [np.log(np.exp(-d[i]).sum()) + d[i, c] for i, c in enumerate([0, 1, 0])]
    np.testing.assert_allclose(protonet.mean_xent(protonet_logits(support, labels, query), labelb).numpy(),
                               [np.mean(nll)], rtol=1e-12)


def test_squared_distance_logits_gradients_match_finite_differences():
    rng = np.random.RandomState(0)
    support = tf.constant(rng.normal(size=(2, 6, 5)), F64)
    labels = tf.constant(np.stack([np.eye(3)[[2, 0, 1, 1, 0, 2]], np.eye(3)[[0, 1, 2, 0, 1, 2]]]), F64)
    query = tf.constant(rng.normal(size=(2, 4, 5)), F64)
    theoretical, numerical = tf.test.compute_gradient(lambda s, q: protonet_logits(s, labels, q), [support, query])
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-6, atol=1e-8)


def test_embedding_width_is_64_on_omniglot_and_1600_on_miniimagenet():
    assert protonet.feature_size(28, 64) == 64 and protonet.feature_size(84, 64) == 1600
    model = ProtoNet(21168, 5, 0, _config(datasource='miniimagenet', num_filters=64))
    features, stats = model.embed(tf.zeros([1, 2, 21168]), training=True)
    assert features.shape == (1, 2, 1600) and len(stats) == 4


def test_learning_rate_halves_every_lr_decay_every_steps():
    model = ProtoNet(256, 2, 0, _config(meta_lr=1e-3, lr_decay_every=2000))
    assert [float(model.scheduled_lr(tf.constant(s, tf.int64))) for s in (0, 1999, 2000, 3999, 4000)] == \
        pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4], rel=1e-6)
    never = ProtoNet(256, 2, 0, _config(meta_lr=1e-3, lr_decay_every=0))
    assert float(never.scheduled_lr(tf.constant(10 ** 6, tf.int64))) == pytest.approx(1e-3)
    fast = ProtoNet(256, 2, 0, _config(lr_decay_every=1))
    batch = _episode(np.random.RandomState(1))
    fast._metatrain_step(*batch)     # eager: the compiled path is the resume test's
    fast._metatrain_step(*batch)
    assert int(fast.step.numpy()) == 2 and float(fast.learning_rate.numpy()) == pytest.approx(5e-4)


def test_running_statistics_follow_torch_batch_norm():
    model = ProtoNet(256, 2, 0, _config())
    images = tf.constant(np.random.RandomState(2).uniform(size=(1, 6, 256)), tf.float32)
    _, stats = model.embed(images, training=True)
    model.update_running(stats)
    mean, var, n = stats[0]
    assert n == 6 * 16 * 16
    np.testing.assert_allclose(model.running['0/moving_mean'].numpy(), 0.1 * mean.numpy()[0], rtol=1e-6)
    np.testing.assert_allclose(model.running['0/moving_variance'].numpy(),
                               0.9 + 0.1 * var.numpy()[0] * n / (n - 1), rtol=1e-6)


def test_evaluate_reports_one_column_and_changes_nothing():
    rng = np.random.RandomState(3)
    model = ProtoNet(256, 2, 0, _config())
    model._metatrain_step(*_episode(rng))
    before = [v.numpy() for v in model.variables]
    batch = _episode(rng, b=2, q=3)
    out = model.evaluate(*batch)
    assert out.total_losses2.shape == (0,) and out.total_accuracies2.shape == (0,) and out.lossesa.shape == (2,)
    assert 0.0 <= float(out.total_accuracy1) <= 1.0
    for a, b in zip(before, [v.numpy() for v in model.variables]):
        np.testing.assert_array_equal(a, b)
    episode = ProtoNet(256, 2, 0, _config(test_bn='episode'))
    assert float(episode._evaluate(*batch).total_loss1) != float(ProtoNet(256, 2, 0, _config())._evaluate(*batch)
                                                                  .total_loss1)
    with pytest.raises(ValueError, match='test_bn'):
        ProtoNet(256, 2, 0, _config(test_bn='bogus'))


@pytest.mark.parametrize('method,compiled', [('protonet', False),
                                             pytest.param('protonet', True, marks=pytest.mark.slow),
                                             pytest.param('matchingnet', True, marks=pytest.mark.slow)])
def test_resume_is_bit_identical(tmp_path, method, compiled):
    """3 steps in one go == 1 step, a checkpoint, a fresh model (other seed) restored from it, 2 more steps
    (the default set runs the steps eagerly, the slow set compiled as main.py does)."""
    from learners.matchingnet import MatchingNet
    cls = {'protonet': ProtoNet, 'matchingnet': MatchingNet}[method]

    def step(model, batch):
        return float((model.metatrain_step if compiled else model._metatrain_step)(*batch))
    rng = np.random.RandomState(4)
    batches = [_episode(rng, b=2) for _ in range(3)]
    straight = cls(256, 2, 0, _config(lr_decay_every=2))
    losses = [step(straight, b) for b in batches]
    first = cls(256, 2, 0, _config(lr_decay_every=2))
    resumed_losses = [step(first, batches[0])]
    path = tf.train.Checkpoint(**first.checkpoint_items()).write(str(tmp_path / 'ckpt'))
    second = cls(256, 2, 0, _config(lr_decay_every=2, seed=99))
    tf.train.Checkpoint(**second.checkpoint_items()).read(path).assert_existing_objects_matched()
    resumed_losses += [step(second, b) for b in batches[1:]]
    assert resumed_losses == losses
    assert len(straight.variables) == len(second.variables)
    for a, b in zip(straight.variables, second.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
