"""Meta-SGD: MAML to the last bit when every alpha is update_lr, the elementwise inner step, finite differences."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_directional_derivative
import maml
from learners import metasgd
from test_mamlpp import _conv_batch, _conv_config, _sine_batch, _sine_config, _spread

F64 = tf.float64


@pytest.mark.parametrize('network, xla', [('sinusoid', False), pytest.param('conv', False, marks=pytest.mark.slow),
                                          pytest.param('sinusoid', True, marks=pytest.mark.slow)])
def test_alphas_at_update_lr_equal_maml_bit_for_bit(network, xla):
    """Fresh Meta-SGD (every alpha = update_lr), float32: evaluation, the first step's loss and the updated
    weights equal MAML's exactly (after it the alphas have learned and the two part). Under XLA the updated
    weights may differ in the last bit: its simplifier rearranges products with MAML's constant update_lr
    but not with a variable alpha (measured: 1.2e-10 on the sinusoid biases)."""
    if network == 'conv':
        config, batch, dims = _conv_config(), _conv_batch(0), (784, 2)
    else:
        config, batch, dims = _sine_config(), _sine_batch(0), (1, 1)
    config = config.replace(xla=xla)
    ref, model = maml.MAML(*dims, 2, config), metasgd.MetaSGD(*dims, 2, config)
    want, got = ref.evaluate(*batch), model.evaluate(*batch)
    np.testing.assert_array_equal(want.total_losses2.numpy(), got.total_losses2.numpy())
    np.testing.assert_array_equal(want.outputbs.numpy(), got.outputbs.numpy())
    assert ref.metatrain_step(*batch).numpy() == model.metatrain_step(*batch).numpy()
    for k, v in ref.weights.items():
        if xla:
            np.testing.assert_allclose(v.numpy(), model.weights[k].numpy(), rtol=1e-6, atol=1e-9, err_msg=k)
        else:
            np.testing.assert_array_equal(v.numpy(), model.weights[k].numpy(), err_msg=k)
    first, last = list(ref.weights)[0], list(ref.weights)[-2]       # (pre-norm biases get no meta-gradient)
    assert all(np.any(model.inner_lrs[k].numpy() != config.update_lr) for k in (first, last)), 'alpha not learned'
    assert set(model.metatrain_optimizer.m) == set(ref.meta_variables) | {'alpha/' + k for k in ref.weights}


def test_inner_step_is_theta_minus_alpha_times_grad_elementwise():
    model = metasgd.MetaSGD(1, 1, 1, _sine_config(num_updates=1), dtype=F64)
    rng = np.random.RandomState(0)
    for v in model.inner_lrs.values():
        v.assign(rng.uniform(-0.05, 0.1, v.shape))
    inputa, labela, _, _ = _sine_batch(1, tasks=1, dtype=F64)
    w = model._task_weights(1)
    with tf.GradientTape() as tape:
        tape.watch(list(w.values()))
        loss = tf.reduce_sum(model.loss_func(model.forward(inputa, w), labela))
    grads = tape.gradient(loss, w)
    fast, _, _ = model._adapt(w, inputa, labela, 0)
    for k in w:
        np.testing.assert_allclose(fast[k].numpy(), (w[k] - model.inner_lrs[k] * grads[k]).numpy(), rtol=1e-14,
                                   err_msg=k)


@pytest.mark.parametrize('lslr', [False, True])
def test_meta_gradient_of_weights_and_alphas_matches_finite_differences(lslr):
    """Two inner steps (--lslr: an alpha per step), float64 central differences along a random unit direction
    over weights and alphas, to 1e-7 relative."""
    model = metasgd.MetaSGD(1, 1, 2, _sine_config(lslr=lslr), dtype=F64)
    _spread(model)
    rng = np.random.RandomState(3)
    for v in model.inner_lrs.values():
        v.assign(rng.uniform(0.005, 0.1, v.shape))
    batch = _sine_batch(2, dtype=F64)
    _, grads = model.meta_gradients(*batch)
    assert_directional_derivative(
        model, grads, lambda: float(model.metalearn(*batch, num_updates=2).total_losses2[1]), rng)
