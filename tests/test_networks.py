"""Network plug-ins (networks/): a Keras model as a pure function of its weights, run by every learner.

- The paper's Conv-4 written as a Keras model (networks.builtin.conv4), given the functional path's weights, gives
  the functional path's loss and meta-gradient from the same inputs (second and first order, with and without XLA).
- Every learner runs one meta-iteration, saves, resumes and tests through main.py on a small Keras model defined
  here (a MODULE:FUNCTION network).
- ResNet-12's output shapes and parameter count (MetaOptNet's 64-160-320-640; 16,000 / 640 features on 84x84).
- Bad --network values are one-line usage errors.
"""
import os
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import keras

import config as config_lib
import main
import networks
from config import Config
from maml import MAML
from networks import keras_net, layers, resnet12

WAYS = 3
PRE_BN_BIASES = ('b1', 'b2', 'b3', 'b4')


# ---------------------------------------------------------------- Conv-4: Keras vs the functional path
def _conv4_config(stop_grad, xla):
    return Config(datasource='omniglot', num_classes=WAYS, update_batch_size=1, num_updates=1, update_lr=0.4,
                  num_filters=4, meta_batch_size=2, stop_grad=stop_grad, seed=5, xla=xla)


def _functional_keys(keras_keys):
    """{keras key: functional key} for the Conv-4: conv_i kernel/bias -> conv<i>/b<i>, batch norm i -> '<i-1>/beta',
    the dense layer -> w5/b5 (the Keras layers in model order)."""
    mapping, conv, norm = {}, 0, 0
    for key in keras_keys:
        if key.endswith('conv2d/kernel'):
            conv += 1
            mapping[key] = f'conv{conv}'
        elif key.endswith('conv2d/bias'):
            mapping[key] = f'b{conv}'
        elif key.endswith('/beta'):
            mapping[key] = f'{norm}/beta'
            norm += 1
        elif key.endswith('dense/kernel'):
            mapping[key] = 'w5'
        elif key.endswith('dense/bias'):
            mapping[key] = 'b5'
    return mapping


def _batch(seed, tasks=2):
    rng = np.random.RandomState(seed)
    labels = [np.stack([np.eye(WAYS)[rng.permutation(WAYS)] for _ in range(tasks)]) for _ in range(2)]
    images = [rng.uniform(size=(tasks, WAYS, 784)) for _ in range(2)]
    return [tf.constant(v, tf.float32) for v in (images[0], labels[0], images[1], labels[1])]


def _meta_gradients(model, xla):
    step = tf.function(lambda *b: model.meta_gradients(*b), jit_compile=xla)
    out, grads = step(*_batch(0))
    return float(out.total_losses2[-1]), {k: g.numpy() for k, g in grads.items()}


@pytest.mark.parametrize('stop_grad,xla', [(False, False), (True, False), (False, True), (True, True)])
def test_keras_conv4_gives_the_functional_loss_and_meta_gradient(stop_grad, xla):
    config = _conv4_config(stop_grad, xla)
    functional = MAML(784, WAYS, 2, config)
    keras_maml = networks.learner_class(config.replace(network='conv4'), MAML)(
        784, WAYS, 2, config.replace(network='conv4'))
    mapping = _functional_keys(keras_maml.meta_variables)
    assert sorted(mapping.values()) == sorted(functional.meta_variables)
    for key, var in keras_maml.meta_variables.items():
        var.assign(functional.meta_variables[mapping[key]])
    loss, grads = _meta_gradients(functional, xla)
    keras_loss, keras_grads = _meta_gradients(keras_maml, xla)
    assert keras_loss == pytest.approx(loss, rel=1e-5)
    kernel = max(np.max(np.abs(grads[f'conv{i}'])) for i in range(1, 5))
    for key, g in keras_grads.items():
        ref = grads[mapping[key]]
        if mapping[key] in PRE_BN_BIASES:   # true gradient 0 (batch norm follows): rounding noise on both sides
            assert np.max(np.abs(g)) <= 1e-4 * kernel, key
        else:
            assert np.max(np.abs(g - ref)) <= 1e-4 * np.max(np.abs(ref)), key
