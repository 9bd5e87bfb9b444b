"""Behaviour of the MAML maths beyond the goldens: finite differences, first order, adaptation."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_directional_derivative
import utils
from config import Config
from maml import MAML

F64 = tf.float64


def _tiny_conv(stop_grad=False, norm='batch_norm', num_updates=2, dtype=F64):
    """A 2-way 1-shot Omniglot conv net with 3 filters: small enough for float64 finite differences."""
    config = Config(datasource='omniglot', num_classes=2, update_batch_size=1, num_updates=num_updates,
                    update_lr=0.4, norm=norm, num_filters=3, stop_grad=stop_grad, seed=3, xla=False)
    model = MAML(784, 2, test_num_updates=num_updates, config=config, dtype=dtype)
    rng = np.random.RandomState(0)
    labels = np.tile(np.eye(2), (1, 1))[None]
    batch = [tf.constant(rng.uniform(size=(2, 2, 784)), dtype), tf.constant(np.repeat(labels, 2, 0), dtype),
             tf.constant(rng.uniform(size=(2, 2, 784)), dtype), tf.constant(np.repeat(labels, 2, 0), dtype)]
    return model, batch


def _tiny_sine(stop_grad=False, num_updates=2, dtype=F64):
    config = Config(datasource='sinusoid', update_batch_size=5, num_updates=num_updates, update_lr=0.01,
                    norm='None', stop_grad=stop_grad, seed=4, xla=False)
    model = MAML(1, 1, test_num_updates=num_updates, config=config, dtype=dtype)
    rng = np.random.RandomState(1)
    x = rng.uniform(-5, 5, size=(3, 10, 1))
    y = 3.0 * np.sin(x - 1.0)
    batch = [tf.constant(v, dtype) for v in (x[:, :5], y[:, :5], x[:, 5:], y[:, 5:])]
    return model, batch


def _meta_loss(model, batch):
    return float(model.metalearn(*batch, num_updates=model.config.num_updates)
                 .total_losses2[model.config.num_updates - 1])


@pytest.mark.parametrize('make', [_tiny_sine, _tiny_conv, lambda: _tiny_conv(norm='layer_norm')],
                         ids=['sinusoid', 'conv_batch_norm', 'conv_layer_norm'])
def test_second_order_meta_gradient_matches_finite_differences(make):
    """Directional derivative of the post-update loss (two inner steps) along a random unit
    direction, central differences in float64, equals <meta-gradient, direction> to 1e-7 relative.
    (A step of 1e-5 stays clear of ReLU kinks; the first-order gradient misses by > 1e-2.)"""
    model, batch = make()
    _, grads = model.meta_gradients(*batch)
    assert_directional_derivative(model, grads, lambda: _meta_loss(model, batch), np.random.RandomState(7))


def test_stop_grad_equals_the_first_order_formula():
    """With stop_grad the meta-gradient is the query-loss gradient taken at the fast weights
    (fast = w - lr * grad_a(w)), and differs from the second-order meta-gradient."""
    model, batch = _tiny_conv(stop_grad=True, num_updates=1)
    _, fo = model.meta_gradients(*batch)
    inputa, labela, inputb, labelb = batch
    expected = {k: np.zeros(v.shape) for k, v in model.meta_variables.items()}
    for t in range(2):   # one task at a time: task axis of size 1
        task = slice(t, t + 1)
        w = {k: tf.convert_to_tensor(v)[None] for k, v in model.weights.items()}
        with tf.GradientTape() as tape:
            tape.watch(list(w.values()))
            loss_a = tf.reduce_sum(model.loss_func(model.forward(inputa[task], w), labela[task]))
        ga = tape.gradient(loss_a, w)
        fast = {k: tf.constant((w[k] - model.update_lr * ga[k]).numpy()) for k in w}
        with tf.GradientTape() as tape:
            tape.watch(list(fast.values()))
            loss_b = tf.reduce_sum(model.loss_func(model.forward(inputb[task], fast), labelb[task])) / 2.0
        gb = tape.gradient(loss_b, {**fast, **model.norm_weights})
        for k in expected:
            expected[k] += gb[k].numpy()[0] if k in fast else gb[k].numpy()
    for k in expected:
        np.testing.assert_allclose(fo[k].numpy(), expected[k], rtol=1e-10, atol=1e-12)
    model_so, _ = _tiny_conv(stop_grad=False, num_updates=1)
    _, so = model_so.meta_gradients(*batch)
    diff = max(np.max(np.abs(so[k].numpy() - fo[k].numpy())) / np.max(np.abs(so[k].numpy()))
               for k in ('conv1', 'conv2', 'w5'))
    assert diff > 0.05


def test_one_inner_step_is_w_minus_lr_grad():
    """The fast weights after one step are exactly w - update_lr * dL_a/dw: the query output of
    task_metalearn equals a forward pass with hand-made fast weights."""
    model, batch = _tiny_sine(num_updates=1)
    inputa, labela, inputb, labelb = batch
    w = {k: tf.broadcast_to(v, [3] + v.shape.as_list()) for k, v in model.weights.items()}
    with tf.GradientTape() as tape:
        tape.watch(list(w.values()))
        loss = tf.reduce_sum(utils.mse(model.forward(inputa, w), labela))   # tasks are independent
    g = tape.gradient(loss, w)
    fast = {k: w[k] - 0.01 * g[k] for k in w}
    out = model.task_metalearn(inputa, inputb, labela, labelb, w, num_updates=1)
    np.testing.assert_allclose(out.outputbs[0].numpy(), model.forward(inputb, fast).numpy(), rtol=1e-12)


def test_every_meta_variable_gets_a_gradient_and_adaptation_lowers_the_loss():
    model, batch = _tiny_sine(num_updates=2)
    out, grads = model.meta_gradients(*batch)
    assert set(grads) == set(model.meta_variables)
    assert all(np.any(g.numpy() != 0) for g in grads.values())
    inputa, labela = batch[:2]
    same_points = model.metalearn(inputa, labela, inputa, labela, num_updates=2)   # query = support
    assert float(same_points.total_losses2[0]) < float(same_points.total_loss1)
    assert float(same_points.total_losses2[1]) < float(same_points.total_losses2[0])


def test_norm_parameters_are_meta_learned_but_not_adapted():
    """beta of batch norm is not in the fast weights (inner step leaves it) yet gets a meta-gradient."""
    model, batch = _tiny_conv(num_updates=1)
    assert not any('beta' in k for k in model.weights)
    _, grads = model.meta_gradients(*batch)
    assert np.any(grads['0/beta'].numpy() != 0)


def test_pre_bn_biases_get_no_meta_gradient():
    """Batch norm removes a constant bias: its true meta-gradient is 0 (float64: ~1e-13), which the
    TF 1.0 moments give and modern tf.nn.moments do not."""
    model, batch = _tiny_conv(num_updates=2)
    _, grads = model.meta_gradients(*batch)
    kernel = np.max(np.abs(grads['conv2'].numpy()))
    for b in ('b1', 'b2', 'b3', 'b4'):
        assert np.max(np.abs(grads[b].numpy())) <= 1e-10 * kernel


def test_steps_are_traced_once_and_run_under_xla():
    """Repeated meta-train / pretrain / evaluate calls reuse one XLA-compiled trace each."""
    config = Config(datasource='sinusoid', update_batch_size=5, meta_batch_size=4, update_lr=0.01,
                    norm='None', seed=0, xla=True)
    model = MAML(1, 1, test_num_updates=5, config=config)
    rng = np.random.RandomState(0)
    for _ in range(3):
        batch = [tf.constant(rng.uniform(size=(4, 5, 1)), tf.float32) for _ in range(4)]
        model.metatrain_step(*batch)
        model.pretrain_step(*batch)
        model.evaluate(*batch)
    for name in ('metatrain', 'pretrain', 'evaluate5'):
        fn = model._functions[name]
        assert fn.experimental_get_tracing_count() == 1, name
        assert 'HloModule' in fn.experimental_get_compiler_ir(*batch)(stage='hlo'), name
    plain = MAML(1, 1, test_num_updates=5, config=config.replace(xla=False))
    plain.metatrain_step(*batch)
    with pytest.raises(ValueError):   # only jit_compile functions have compiler IR
        plain._functions['metatrain'].experimental_get_compiler_ir(*batch)(stage='hlo')


@pytest.mark.parametrize('make', [_tiny_sine, _tiny_conv, lambda: _tiny_conv(norm='layer_norm')],
                         ids=['sinusoid', 'conv_batch_norm', 'conv_layer_norm'])
@pytest.mark.parametrize('task_groups', [1, 2, 3])
def test_batched_path_equals_the_per_task_reference(make, task_groups):
    """The batched meta-batch (one computation over all tasks, or over `task_groups` groups of
    them, uneven where the batch does not divide) gives the per-task map_fn path's losses, outputs
    and meta-gradients (float64, so only the order of summation differs)."""
    model, batch = make()
    model.task_groups = task_groups
    reference = MAML(model.dim_input, model.dim_output, model.test_num_updates, model.config,
                     dtype=F64, batched=False)
    for k, v in model.meta_variables.items():
        reference.meta_variables[k].assign(v)
    out, grads = model.meta_gradients(*batch)
    ref_out, ref_grads = reference.meta_gradients(*batch)
    for a, b in zip(tf.nest.flatten(out), tf.nest.flatten(ref_out)):
        if a is None:   # accuracies of a regression model
            assert b is None
            continue
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-12)
    for k in grads:
        np.testing.assert_allclose(grads[k].numpy(), ref_grads[k].numpy(), rtol=1e-8, atol=1e-12)


def test_max_pool_matches_tf_max_pool_values_and_gradient():
    """The slice-based 2x2 max-pool equals tf.nn.max_pool2d, also on odd sizes (VALID drops the edge)."""
    x = tf.constant(np.random.RandomState(0).normal(size=(2, 3, 21, 21, 4)))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = utils.max_pool_2x2(x)
        theirs = tf.reshape(tf.nn.max_pool2d(tf.reshape(x, [6, 21, 21, 4]), 2, 2, 'VALID'), [2, 3, 10, 10, 4])
        weights = tf.constant(np.random.RandomState(1).normal(size=(2, 3, 10, 10, 4)))
        lo, lt = tf.reduce_sum(ours * weights), tf.reduce_sum(theirs * weights)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(tape.gradient(lo, x).numpy(), tape.gradient(lt, x).numpy())


def test_per_task_convolution_matches_conv2d():
    rng = np.random.RandomState(0)
    x = tf.constant(rng.normal(size=(2, 3, 7, 7, 5)))
    k = tf.constant(rng.normal(size=(2, 3, 3, 5, 4)))
    for stride in (1, 2):
        ours = utils.conv2d_per_task(x, k, stride)
        for t in range(2):
            np.testing.assert_allclose(ours[t].numpy(), tf.nn.conv2d(x[t], k[t], stride, 'SAME').numpy(),
                                       rtol=1e-12, atol=1e-12)
