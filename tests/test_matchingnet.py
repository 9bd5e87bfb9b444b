"""Matching Networks: cosine attention against a hand computation and float64 finite differences."""
import numpy as np
import pytest
import tensorflow as tf

from config import Config
from learners.matchingnet import MatchingNet, attention_logits, cosine_similarities

F64 = tf.float64


def test_attention_probabilities_are_the_attention_weighted_label_sum():
    support = np.array([[3., 4.], [1., 0.], [0., 2.]])       # classes 0, 1, 0
    labels = np.eye(2)[[0, 1, 0]]
    query = np.array([[1., 1.], [-2., 0.]])
    cos = np.array([[7 / (5 * np.sqrt(2)), 1 / np.sqrt(2), 1 / np.sqrt(2)],
                    [-6 / 10, -1., 0.]])
    sims = cosine_similarities(tf.constant(query[None]), tf.constant(support[None]))
    np.testing.assert_allclose(sims.numpy()[0], cos, rtol=1e-12)
    a = np.exp(cos) / np.exp(cos).sum(1, keepdims=True)       # attention over the support
    probs = tf.nn.softmax(attention_logits(sims, tf.constant(labels[None]))).numpy()[0]
    np.testing.assert_allclose(probs, a @ labels, rtol=1e-12)


def test_cosine_attention_gradients_match_finite_differences():
    rng = np.random.RandomState(0)
    labels = tf.constant(np.stack([np.eye(3)[[2, 0, 1, 1, 0, 2]], np.eye(3)[[0, 1, 2, 0, 1, 2]]]), F64)
    support = tf.constant(rng.normal(size=(2, 6, 5)), F64)
    query = tf.constant(rng.normal(size=(2, 4, 5)), F64)
    theoretical, numerical = tf.test.compute_gradient(
        lambda s, q: attention_logits(cosine_similarities(q, s), labels), [support, query], delta=1e-5)
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-6, atol=1e-8)


def test_a_training_step_and_evaluation():
    config = Config(datasource='omniglot', num_classes=2, update_batch_size=1, num_filters=4, seed=1, xla=False)
    model = MatchingNet(256, 2, 0, config)
    rng = np.random.RandomState(1)
    batch = [tf.constant(rng.uniform(size=(1, 2, 256)), tf.float32), tf.constant(np.eye(2)[None], tf.float32),
             tf.constant(rng.uniform(size=(1, 2, 256)), tf.float32), tf.constant(np.eye(2)[None], tf.float32)]
    assert np.isfinite(float(model._metatrain_step(*batch)))
    out = model._evaluate(*batch)
    assert out.total_losses2.shape == (0,) and np.isfinite(float(out.total_loss1))
    with pytest.raises(ValueError, match='fce'):
        MatchingNet(256, 2, 0, config.replace(fce=True))
