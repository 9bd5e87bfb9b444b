"""api.py: a user's Keras model and task batches, meta-trained and adapted in the user's own loop."""
import os
import sys

import numpy as np
import pytest

import api
from conftest import REPO

sys.path.insert(0, REPO)
from examples import regression  # noqa: E402


def tiny_cnn(input_shape, num_outputs):
    import keras
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, strides=2, padding='same', activation='relu')(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if num_outputs is not None:
        x = keras.layers.Dense(num_outputs)(x)
    return keras.Model(inputs, x)


def test_maml_on_a_users_regression_family_learns_to_adapt():
    """MAML through the API on examples/regression.py's lines: after meta-training, 5 points of a new line and
    one inner step give a much lower error than the meta-learned initialisation before adaptation."""
    rng = np.random.RandomState(1)
    learner = api.MetaLearner(regression.mlp, input_shape=(1,), regression=True, num_outputs=1, update_lr=0.01,
                              norm='None', meta_batch_size=10, seed=0, xla=False, meta_lr=0.01)
    for _ in range(300):
        x, y = regression.lines(rng, 10, 10)
        learner.meta_train_step(x[:, :5], y[:, :5], x[:, 5:], y[:, 5:])
    before, after = [], []
    for _ in range(20):
        x, y = regression.lines(rng, 1, 10)
        out = learner.model.evaluate(*[v.astype(np.float32) for v in (x[:, :5], y[:, :5], x[:, 5:], y[:, 5:])])
        before.append(float(out.total_loss1))
        prediction = learner.adapt_and_predict(x[0, :5], y[0, :5], x[0, 5:])
        assert prediction.shape == (5, 1)
        after.append(np.mean((prediction - y[0, 5:]) ** 2))
        np.testing.assert_allclose(after[-1], float(out.total_losses2[-1]), rtol=1e-4)   # its own evaluation
    assert np.mean(after) < 0.5 * np.mean(before), (np.mean(before), np.mean(after))


@pytest.mark.parametrize('method', ['maml', 'protonet'])
def test_a_users_cnn_trains_saves_and_restores(method, tmp_path):
    rng = np.random.RandomState(0)
    learner = api.MetaLearner(tiny_cnn, input_shape=(8, 8, 1), num_classes=3, method=method, seed=0, xla=False,
                              meta_batch_size=2)
    images = rng.uniform(size=[2, 6, 8, 8, 1]).astype(np.float32)
    labels = np.tile(np.arange(3), [2, 2])
    loss = learner.meta_train_step(images[:, :3], labels[:, :3], images[:, 3:], labels[:, 3:])
    assert np.isfinite(loss)
    logits = learner.adapt_and_predict(images[0, :3], labels[0, :3], images[0, 3:])
    assert logits.shape == (3, 3)
    learner.save(str(tmp_path / 'model'))
    other = api.MetaLearner(tiny_cnn, input_shape=(8, 8, 1), num_classes=3, method=method, seed=1, xla=False,
                            meta_batch_size=2)
    assert not np.allclose(other.adapt_and_predict(images[0, :3], labels[0, :3], images[0, 3:]), logits)
    other.restore(str(tmp_path / 'model'))
    np.testing.assert_array_equal(other.adapt_and_predict(images[0, :3], labels[0, :3], images[0, 3:]), logits)


def test_a_baseline_pretrains_on_mini_batches_not_tasks():
    learner = api.MetaLearner(tiny_cnn, input_shape=(8, 8, 1), num_classes=3, method='baseline', num_base_classes=4,
                              seed=0, xla=False)
    with pytest.raises(ValueError, match='pre-trains on mini-batches of classes'):
        learner.meta_train_step(*[np.zeros([1, 3, 8, 8, 1])] * 4)
    assert np.isfinite(learner.pretrain_step(np.zeros([8, 8, 8, 1], np.float32), np.arange(8) % 4))
    assert os.path.isfile(os.path.join(REPO, 'examples', 'cnn.py'))
