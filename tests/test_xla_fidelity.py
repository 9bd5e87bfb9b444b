"""The XLA path computes the float32 meta-gradient as closely as the non-XLA path (issue 12).

Randomized 20-way 1-shot batch-norm cases (the setting where XLA's float32 used to miss the
original by up to 6e-2): random Glorot weights and U[0,1) pixels, as the golden files draw them.
XLA's CPU reduce adds the values of a batch-norm statistic one after the other (4x the rounding
error of TF's kernels over 20*14*14 values); the fast weights then move a ReLU input lying within
float32 rounding distance of 0 to the other side, and one such flip moves the meta-gradient by
1e-2..3e-1. utils.pairwise_sum fixes it (docs/SPEED.md, "XLA float32 fidelity").

Every case first checks that it is not a tie: the non-XLA float32 meta-gradient equals the float64
one (where a ReLU input lies within rounding distance of 0 no float32 implementation, the
original's included, has a defined answer; docs/SPEED.md shows such seeds). Metric as the golden
checks: max|diff| / max|reference| per variable; the pre-BN conv biases (true gradient 0, values
rounding noise) are compared as |grad| / max kernel grad.
"""
import numpy as np
import pytest
import tensorflow as tf

import utils
from config import Config
from maml import MAML

WAYS = 20
TOLERANCE = 1e-4
PRE_BN_BIASES = ('b1', 'b2', 'b3', 'b4')


def _model(seed, stop_grad, dtype, xla, task_groups):
    config = Config(datasource='omniglot', num_classes=WAYS, update_batch_size=1, num_updates=2,
                    update_lr=0.1, norm='batch_norm', num_filters=64, stop_grad=stop_grad, seed=seed,
                    meta_batch_size=2, xla=xla)
    return MAML(784, WAYS, test_num_updates=2, config=config, dtype=dtype, task_groups=task_groups)


def _batch(seed, dtype, tasks=2):
    """inputa, labela, inputb, labelb: U[0,1) pixels, one-hot labels in a random class order per task."""
    rng = np.random.RandomState(seed)
    labels = [np.stack([np.eye(WAYS)[rng.permutation(WAYS)] for _ in range(tasks)]) for _ in range(2)]
    images = [rng.uniform(size=(tasks, WAYS, 784)) for _ in range(2)]
    return [tf.constant(v, dtype) for v in (images[0], labels[0], images[1], labels[1])]


def _meta_gradients(seed, stop_grad, dtype, xla, task_groups=1, initial=None):
    """({variable: meta-gradient as float64}, {variable: initial value}) of one compiled step."""
    model = _model(seed, stop_grad, dtype, xla, task_groups)
    if initial is not None:
        for key, var in model.meta_variables.items():
            var.assign(tf.cast(initial[key], dtype))
    step = tf.function(lambda *b: model.meta_gradients(*b)[1], jit_compile=xla)
    grads = step(*_batch(seed, dtype))
    return ({k: g.numpy().astype(np.float64) for k, g in grads.items()},
            {k: v.numpy() for k, v in model.meta_variables.items()})


def _errors(ours, ref):
    """{variable: max|ours - ref| / max|ref|} (pre-BN biases: max|ours| / max kernel grad)."""
    kernel = max(np.max(np.abs(ref['conv%d' % i])) for i in range(1, 5))
    return {k: float(np.max(np.abs(ours[k])) / kernel) if k in PRE_BN_BIASES else
            float(np.max(np.abs(ours[k] - ref[k])) / np.max(np.abs(ref[k]))) for k in ref}


def _over(errors):
    return {k: f'{e:.2g}' for k, e in errors.items() if e > TOLERANCE}


# (seed, stop_grad, XLA task groups): seeds whose non-XLA float32 meta-gradient matches float64
# (measured; about half of the random seeds hold a float32 tie, docs/SPEED.md). Whether XLA lands on
# the wrong side of a near-zero ReLU is a matter of chance per seed, so the deterministic check that
# fails without the fix is test_batch_norm_variance_under_xla_is_as_accurate_as_without.
CASES = [pytest.param(1, True, 2, id='first_order_seed1_2groups'),
         pytest.param(1, False, 1, id='second_order_seed1')]


@pytest.mark.slow
@pytest.mark.parametrize('seed,stop_grad,task_groups', CASES)
def test_xla_meta_gradient_matches_the_non_xla_path(seed, stop_grad, task_groups):
    reference, initial = _meta_gradients(seed, stop_grad, tf.float32, xla=False)
    exact, _ = _meta_gradients(seed, stop_grad, tf.float64, xla=False, initial=initial)
    assert not _over(_errors(reference, exact)), 'a float32 tie: this seed cannot test fidelity'
    compiled, _ = _meta_gradients(seed, stop_grad, tf.float32, xla=True, task_groups=task_groups)
    assert not _over(_errors(compiled, reference))


@pytest.mark.parametrize('shape,axes', [([2, 20, 14, 14, 64], [1, 2, 3]), ([2, 5, 7, 3], [2, 3]),
                                        ([3, 9, 40], [1]), ([2, 1, 4], [1]), ([2, 8, 3], [1]), ([17], [0])])
def test_pairwise_sum_is_reduce_sum(shape, axes):
    x = tf.constant(np.random.RandomState(0).normal(size=shape), tf.float64)
    ours = utils.pairwise_sum(x, axes)
    assert ours.shape == tf.reduce_sum(x, axes, keepdims=True).shape
    np.testing.assert_allclose(ours.numpy(), tf.reduce_sum(x, axes, keepdims=True).numpy(), rtol=1e-12)


def test_batch_norm_variance_under_xla_is_as_accurate_as_without():
    """The op that departed: the variance of layer 1's 20*14*14 values per channel (20-way 1-shot),
    relative error to float64. XLA's sequential reduce made it 3e-6 against 7e-7 without XLA."""
    rng = np.random.RandomState(0)
    x = tf.constant(0.3 * rng.normal(0.5, 1.0, size=[2, 20, 14, 14, 64]) ** 2 + rng.normal(size=64), tf.float32)
    exact = utils.moments_tf10(tf.cast(x, tf.float64), [1, 2, 3])[1].numpy()
    errors = {}
    for xla in (False, True):
        var = tf.function(lambda t: utils.moments_tf10(t, [1, 2, 3])[1], jit_compile=xla)(x).numpy()
        errors[xla] = float(np.max(np.abs(var - exact) / exact))
    assert errors[True] <= max(2 * errors[False], 5e-7), errors
