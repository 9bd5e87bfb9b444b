"""Fine-tuning baselines (Chen et al. 2019): the new head's SGD against torch's formula, 100 % on separable toy
features, the cosine classifier, deterministic evaluation, and a bit-identical resume of the pre-training."""
import numpy as np
import pytest
import tensorflow as tf

from learners.baseline import Baseline, BaselinePP, cosine_scale, finetune_head, head_logits, init_head

F64 = tf.float64


def _config(**kw):
    from config import Config
    base = dict(datasource='omniglot', num_classes=3, update_batch_size=2, num_filters=4, seed=2, xla=False)
    base.update(kw)
    return Config(**base)


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_finetune_steps_are_torch_sgd_with_momentum_dampening_and_weight_decay():
    """Full-batch steps (order-free), d = gradient + 1e-3 p: buf0 = d0 (no dampening on the first step),
    p1 = p0 - lr buf0; buf1 = 0.9 buf0 + 0.1 d1, p2 = p1 - lr buf1."""
    rng = np.random.RandomState(0)
    x = rng.normal(size=(1, 6, 4))
    y = np.eye(3)[[0, 1, 2, 2, 1, 0]][None]
    seed = tf.constant(7, tf.int64)
    heads = [finetune_head(tf.constant(x), tf.constant(y), seed, e, 6, 0.1, False, 2.0) for e in (0, 1, 2)]
    w, b = heads[0]['w'].numpy()[0], heads[0]['b'].numpy()[0]
    assert np.all(np.abs(w) <= 0.5) and np.all(np.abs(b) <= 0.5)        # U(+-1/sqrt(4))

    def grads(w, b):
        d = (_softmax(x[0] @ w + b) - y[0]) / 6
        return x[0].T @ d + 1e-3 * w, d.sum(0) + 1e-3 * b
    gw, gb = grads(w, b)
    w1, b1 = w - 0.1 * gw, b - 0.1 * gb
    np.testing.assert_allclose(heads[1]['w'].numpy()[0], w1, rtol=1e-12)
    gw1, gb1 = grads(w1, b1)
    np.testing.assert_allclose(heads[2]['w'].numpy()[0], w1 - 0.1 * (0.9 * gw + 0.1 * gw1), rtol=1e-12)
    np.testing.assert_allclose(heads[2]['b'].numpy()[0], b1 - 0.1 * (0.9 * gb + 0.1 * gb1), rtol=1e-12)


@pytest.mark.parametrize('cosine', [False, True], ids=['linear', 'cosine'])
def test_finetuned_head_separates_linearly_separable_features(cosine):
    """5 classes around the corners of a simplex in 16-d, 5 support / 15 query each, two tasks: 100 % query accuracy
    after the default 100 epochs of batch 4."""
    rng = np.random.RandomState(1)
    centers = 3.0 * np.eye(16)[:5] + 0.5
    ys, yq = np.repeat(np.arange(5), 5), np.repeat(np.arange(5), 15)
    xs = np.stack([centers[ys] + 0.3 * rng.normal(size=(25, 16)) for _ in range(2)])
    xq = np.stack([centers[yq] + 0.3 * rng.normal(size=(75, 16)) for _ in range(2)])
    labels = tf.constant(np.eye(5)[ys][None].repeat(2, 0))
    head = tf.function(finetune_head)(tf.constant(xs), labels, tf.constant(3, tf.int64), 100, 4, 0.01, cosine,
                                      cosine_scale(5))
    predicted = np.argmax(head_logits(head, tf.constant(xq), cosine_scale(5)).numpy(), -1)
    np.testing.assert_array_equal(predicted, np.stack([yq, yq]))


def test_cosine_classifier_is_scaled_cosine_of_weight_normed_classes():
    rng = np.random.RandomState(2)
    w, x = rng.normal(size=(4, 3)), rng.normal(size=(5, 4))
    head = init_head(tf.constant(w), None, cosine=True)
    np.testing.assert_allclose(head['g'].numpy(), np.linalg.norm(w, axis=0))
    head['g'] = tf.constant([1., 2., 3.], F64)
    unit_x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-5)
    expected = 10 * unit_x @ (w / np.linalg.norm(w, axis=0) * [1, 2, 3])
    np.testing.assert_allclose(head_logits(head, tf.constant(x), 10.0).numpy(), expected, rtol=1e-12)
    assert cosine_scale(200) == 2.0 and cosine_scale(201) == 10.0


@pytest.mark.parametrize('cls', [Baseline, BaselinePP])
def test_pretraining_resumes_bit_identically_and_evaluation_is_deterministic(tmp_path, cls):
    rng = np.random.RandomState(3)
    batches = [(tf.constant(rng.uniform(size=(8, 256)), tf.float32),
                tf.constant(np.eye(12)[rng.randint(0, 12, 8)], tf.float32)) for _ in range(3)]
    straight = cls(256, 3, 0, _config(), num_base_classes=12)
    assert straight.scale == 2.0 and straight.metatrain_step is not None
    losses = [float(straight._pretrain_step(*b)) for b in batches]
    first = cls(256, 3, 0, _config(), num_base_classes=12)
    resumed = [float(first._pretrain_step(*batches[0]))]
    path = tf.train.Checkpoint(**first.checkpoint_items()).write(str(tmp_path / 'ckpt'))
    second = cls(256, 3, 0, _config(seed=98), num_base_classes=12)
    tf.train.Checkpoint(**second.checkpoint_items()).read(path).assert_existing_objects_matched()
    resumed += [float(second._pretrain_step(*b)) for b in batches[1:]]
    assert resumed == losses
    for a, b in zip(straight.variables, second.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    labels = np.eye(3)[[2, 0, 1, 1, 0, 2]]
    task = [tf.constant(rng.uniform(size=(1, 6, 256)), tf.float32), tf.constant(labels[None], tf.float32),
            tf.constant(rng.uniform(size=(1, 6, 256)), tf.float32), tf.constant(labels[None], tf.float32)]
    before = [v.numpy() for v in second.variables]
    small = second.config.replace(finetune_epochs=5)
    second.config = small
    out1, out2 = second._evaluate(*task), second._evaluate(*task)
    assert out1.total_losses2.shape == (0,)
    assert float(out1.total_loss1) == float(out2.total_loss1)
    for a, b in zip(before, second.variables):
        np.testing.assert_array_equal(a, b.numpy())
    with pytest.raises(NotImplementedError, match='pretrain_step_on_batch'):
        second.metatrain_step(*task)
