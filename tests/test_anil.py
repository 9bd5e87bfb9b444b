"""ANIL: only the head adapts; the meta-gradient (body and head) against float64 finite differences."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_directional_derivative
from learners import anil
from learners import metasgd
from test_mamlpp import _conv_batch, _conv_config, _sine_batch, _sine_config, _spread

F64 = tf.float64


def _model(network, cls=anil.ANIL, **changes):
    if network == 'conv':
        return cls(784, 2, 2, _conv_config(**changes), dtype=F64), _conv_batch(4, F64)
    return cls(1, 1, 2, _sine_config(**changes), dtype=F64), _sine_batch(4, dtype=F64)


@pytest.mark.parametrize('network', ['sinusoid', 'conv'])
def test_meta_gradient_matches_finite_differences(network):
    """Post-update loss after two head-only steps: directional derivative over body and head, float64 central
    differences, to 1e-7 relative; the body gets a meta-gradient."""
    model, batch = _model(network)
    if network == 'sinusoid':
        _spread(model)
    _, grads = model.meta_gradients(*batch)
    body = [k for k in model.weights if k not in model.head_keys()]
    assert all(np.any(grads[k].numpy() != 0) for k in body if not k.startswith('b') or network == 'sinusoid')
    rng = np.random.RandomState(8)
    assert_directional_derivative(
        model, grads, lambda: float(model.metalearn(*batch, num_updates=2).total_losses2[1]), rng)


@pytest.mark.parametrize('network', ['sinusoid', 'conv'])
def test_equals_meta_sgd_with_zero_body_step_sizes(network):
    """ANIL = Meta-SGD whose body alphas are 0 and head alphas update_lr: same losses after every step and the
    same meta-gradient (float64, to rounding)."""
    model, batch = _model(network)
    ref, _ = _model(network, metasgd.MetaSGD)
    assert model.head_keys() == (['w5', 'b5'] if network == 'conv' else ['w3', 'b3'])
    for k, v in ref.inner_lrs.items():
        if k not in model.head_keys():
            v.assign(tf.zeros_like(v))
    out, grads = model.meta_gradients(*batch)
    want, want_grads = ref.meta_gradients(*batch)
    np.testing.assert_allclose(out.total_losses2.numpy(), want.total_losses2.numpy(), rtol=1e-13)
    for k in model.weights:
        np.testing.assert_allclose(grads[k].numpy(), want_grads[k].numpy(), rtol=1e-9, atol=1e-14, err_msg=k)
    assert set(model._task_weights(2)) == set(model.head_keys())
