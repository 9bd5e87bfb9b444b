"""Matching Networks: the attention's similarities (--distance, --cosine_scale, --learn_cosine_scale,
--final_relu) against hand computations, float64 finite differences and the logits of the code before the flags;
old checkpoints (plain cosine, the default until 2026-12-07) refused under the new default."""
import numpy as np
import pytest
import tensorflow as tf

from infra import checkpoints, checks
from config import Config
from learners.matchingnet import MatchingNet, attention_logits, check_settings, cosine_similarities, similarities
from learners.protonet import embed, init_conv4

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


# ---------------------------------------------------------------- --distance, --cosine_scale, --final_relu
SUPPORT = np.array([[3., 4.], [1., 0.], [0., 2.]])           # classes 0, 1, 0
LABELS = np.eye(2)[[0, 1, 0]]
QUERY = np.array([[1., 1.], [-2., 0.]])
COS = np.array([[7 / (5 * np.sqrt(2)), 1 / np.sqrt(2), 1 / np.sqrt(2)], [-6 / 10, -1., 0.]])


def _logits(distance, scale=1.0):
    sims = similarities(tf.constant(QUERY[None]), tf.constant(SUPPORT[None]), distance, scale)
    return attention_logits(sims, tf.constant(LABELS[None])).numpy()[0]


def test_l2_logits_by_hand():
    """Squared distances q0: 13, 1, 2; q1: 41, 9, 8. Class 0 holds supports 0 and 2, class 1 support 1."""
    expected = [[np.logaddexp(-13., -2.), -1.], [np.logaddexp(-41., -8.), -9.]]
    np.testing.assert_allclose(_logits('l2'), expected, rtol=1e-14)


@pytest.mark.parametrize('scale', [1.0, 100.0, 0.5])
def test_scaled_cosine_logits_by_hand(scale):
    c = scale * COS
    expected = [[np.logaddexp(c[0, 0], c[0, 2]), c[0, 1]], [np.logaddexp(c[1, 0], c[1, 2]), c[1, 1]]]
    np.testing.assert_allclose(_logits('cosine', scale), expected, rtol=1e-13, atol=1e-13)


def _model_batch(**flags):
    config = Config(datasource='omniglot', num_classes=3, update_batch_size=2, num_filters=4, seed=3, xla=False,
                    method='matchingnet', **flags)
    rng = np.random.RandomState(5)
    labels = tf.constant(np.eye(3)[[0, 1, 2, 0, 1, 2]][None], tf.float32)
    batch = [tf.constant(rng.uniform(size=(1, 6, 784)), tf.float32), labels,
             tf.constant(rng.uniform(size=(1, 6, 784)), tf.float32), labels]
    return MatchingNet(784, 3, 0, config), batch


def test_plain_cosine_gives_the_logits_and_losses_of_the_code_before_the_flags():
    """--distance=cosine (scale 1, final ReLU): the values learners/matchingnet.py of a1c69dc printed for this
    model, episode and seed (its only similarity then); the default (l2) gives others."""
    model, batch = _model_batch(distance='cosine')
    logits, _ = model.episode_logits(*batch[:3], training=True)
    np.testing.assert_allclose(logits.numpy()[0, :2], [[1.4274792671203613, 1.529270887374878, 1.5896393060684204],
                                                       [1.4585797786712646, 1.3801395893096924, 1.5067436695098877]],
                               rtol=1e-6)
    losses = [float(model._metatrain_step(*batch)) for _ in range(2)]
    np.testing.assert_allclose(losses, [1.1462764739990234, 1.1248409748077393], rtol=1e-6)
    default, batch = _model_batch()
    assert abs(float(default._metatrain_step(*batch)) - losses[0]) > 1e-3


def test_the_learned_scale_is_a_trained_weight_with_the_finite_difference_gradient():
    model, batch = _model_batch(distance='cosine', cosine_scale=10.0, learn_cosine_scale=True)
    scale = model.weights['cosine_scale']
    assert float(scale) == 10.0 and 'cosine_scale' in model.checkpoint_items()['weights']

    def loss():
        logits, _ = model.episode_logits(*batch[:3], training=True)
        return float(tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(batch[3], logits)))
    with tf.GradientTape() as tape:
        logits, _ = model.episode_logits(*batch[:3], training=True)
        objective = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(batch[3], logits))
    grad = float(tape.gradient(objective, scale))
    h = 1e-2
    scale.assign(10.0 + h)
    up = loss()
    scale.assign(10.0 - h)
    down = loss()
    scale.assign(10.0)
    assert grad != 0.0
    np.testing.assert_allclose(grad, (up - down) / (2 * h), rtol=2e-2)
    model._metatrain_step(*batch)
    assert float(scale) != 10.0                     # Adam moved it (by about the learning rate)
    np.testing.assert_allclose(abs(float(scale) - 10.0), 1e-3, rtol=1e-2)


def test_final_relu_false_leaves_out_the_last_relu_only():
    """relu(max_pool(x)) == max_pool(relu(x)), so with the ReLU the features are relu of those without it."""
    rng = tf.random.Generator.from_seed(0)
    weights = {k: v[None] for k, v in init_conv4(rng, 1, 4, 'batch_norm').items()}
    images = tf.constant(np.random.RandomState(0).uniform(size=(1, 8, 784)), tf.float32)
    with_relu, _ = embed(images, weights, 'batch_norm', 28, 1)
    without, _ = embed(images, weights, 'batch_norm', 28, 1, final_relu=False)
    assert float(tf.reduce_min(without)) < 0.0 <= float(tf.reduce_min(with_relu))
    np.testing.assert_array_equal(with_relu.numpy(), tf.nn.relu(without).numpy())
    model, _ = _model_batch(final_relu=False)
    assert model.final_relu is False and MatchingNet(784, 3, 0, model.config.replace(final_relu=True)).final_relu


@pytest.mark.parametrize('flags,message', [
    (dict(distance='cos'), 'unknown --distance'),
    (dict(cosine_scale=100.0), 'scale a cosine'),
    (dict(learn_cosine_scale=True), 'scale a cosine'),
    (dict(distance='cosine', cosine_scale=0.0), 'must be > 0'),
])
def test_settings_that_cannot_be_meant_are_refused(flags, message):
    with pytest.raises(ValueError, match=message):
        check_settings(Config(method='matchingnet', **flags))
    with pytest.raises(checks.UsageError, match=message):          # main.py: before TensorFlow is imported
        checks.check_config(Config(method='matchingnet', datasource='omniglot', **flags))
    checks.check_config(Config(method='protonet', datasource='omniglot'))


# ---------------------------------------------------------------- checkpoints of the old default
OLD_REGIME = {'method': 'matchingnet', 'protocol': 'maml', 'baseline': None, 'datasource': 'omniglot',
              'num_classes': 5, 'conv': True, 'norm': 'batch_norm', 'num_filters': 64, 'max_pool': False,
              'training': 'metatrain'}       # what a matchingnet checkpoint of a1c69dc recorded (no distance)


def test_the_regime_records_the_distance_at_any_value():
    c = Config(datasource='omniglot', method='matchingnet')
    assert checkpoints.regime(c) == dict(OLD_REGIME, distance='l2')
    assert checkpoints.regime(c.replace(distance='cosine'))['distance'] == 'cosine'
    assert 'distance' not in checkpoints.regime(c.replace(method='protonet'))
    assert checkpoints.regime_differences(OLD_REGIME, checkpoints.regime(c)) == [('distance', 'cosine', 'l2')]
    assert checkpoints.regime_differences(OLD_REGIME, checkpoints.regime(c.replace(distance='cosine'))) == []


@pytest.mark.parametrize('purpose,explicit', [('resume', None), ('test', ()), ('test', ('method', 'train')),
                                              ('overwrite', None)])
def test_an_old_cosine_checkpoint_is_refused_under_the_new_default(monkeypatch, purpose, explicit):
    monkeypatch.setattr(checkpoints, 'read_record', lambda prefix: {'regime': OLD_REGIME, 'config': {}})
    c = Config(datasource='omniglot', method='matchingnet', train=purpose != 'test', logdir='logs')
    with pytest.raises(checks.UsageError, match='trained with distance=cosine, .* distance=l2'):
        checkpoints.check_regime(c, 'logs/x/model20000', purpose, explicit)
    assert checkpoints.check_regime(c.replace(distance='cosine'), 'logs/x/model20000', purpose, explicit) is not None
