"""scripts/jax_peer.py, the JAX peer of scripts/benchmark.py, computes the port's meta-train step: the same
meta-gradient and the same Adam update from the same weights on the same meta-batch (float32 rounding apart).
Skipped without JAX (not a dependency of the port); the benchmark's 'not installed' row is tested without it."""
import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, 'scripts'))
import benchmark  # noqa: E402
import jax_peer  # noqa: E402


def _port_and_peer(name):
    setting = benchmark.SETTINGS[name]
    model = benchmark.build_model(setting, 'xla')
    spec = jax_peer.Spec(setting.flags, setting.dim_input, setting.dim_output)
    return setting, model, spec, benchmark.make_batch(setting)


def _port_gradients(model, arrays):
    port = tf.function(lambda *b: model.meta_gradients(*b)[1], jit_compile=True)
    return {k: v.numpy() for k, v in port(*[tf.constant(a) for a in arrays]).items()}


@pytest.mark.parametrize('name, conv', [('d', 'lax'), pytest.param('tiny', 'lax', marks=pytest.mark.slow),
                                        pytest.param('tiny', 'im2col', marks=pytest.mark.slow)])
def test_meta_gradient_and_step_equal_the_port(name, conv):
    pytest.importorskip('jax')
    setting, model, spec, arrays = _port_and_peer(name)
    spec.conv = conv
    params = jax_peer.params_from(model)
    ours = _port_gradients(model, arrays)
    loss, (gw, gn) = jax_peer.meta_gradients(spec, params, arrays)
    err, errs = benchmark.grad_rel_err(ours, {**gw, **gn}, spec.batch_norm)
    assert err < 1e-5, errs
    # one meta-update each, from the same weights (`params` are NumPy copies taken before the port's update)
    objective = model.metatrain_step(*[tf.constant(a) for a in arrays]).numpy()
    step = jax_peer.make_step(spec)
    (weights, norms), _, peer_objective = step(params, jax_peer.adam_init(params), *arrays)
    np.testing.assert_allclose(peer_objective, objective, rtol=1e-6)
    for k, v in {**weights, **norms}.items():
        if spec.batch_norm and k in ('b1', 'b2', 'b3', 'b4'):   # gradient 0 + rounding: Adam's step has any sign
            continue
        np.testing.assert_allclose(np.asarray(v), model.meta_variables[k].numpy(), rtol=1e-5, atol=1e-7, err_msg=k)


def test_scan_runs_the_steps_of_one_call_each():
    """make_scan over N stacked meta-batches ends where N calls of make_step end."""
    pytest.importorskip('jax')
    setting, model, spec, arrays = _port_and_peer('d')
    other = benchmark.make_batch(setting, seed=1)
    batches = [arrays, other, arrays]
    params = jax_peer.params_from(model)
    step = jax_peer.make_step(spec)
    p, s = jax_peer.params_from(model), jax_peer.adam_init(params)
    losses = []
    for batch in batches:
        p, s, loss = step(p, s, *batch)
        losses.append(float(loss))
    stacks = [np.stack(field) for field in zip(*batches)]
    q, _, scan_losses = jax_peer.make_scan(spec)(params, jax_peer.adam_init(params), *stacks)
    np.testing.assert_allclose(np.asarray(scan_losses), losses, rtol=1e-6)
    for k in p[0]:
        np.testing.assert_allclose(np.asarray(q[0][k]), np.asarray(p[0][k]), rtol=1e-5, atol=1e-8, err_msg=k)


def test_gradient_check_catches_another_computation():
    """The check would flag a peer that computes something else (here: first order instead of second)."""
    pytest.importorskip('jax')
    setting, model, spec, arrays = _port_and_peer('d')
    spec.stop_grad = True
    ours = _port_gradients(model, arrays)
    _, (gw, gn) = jax_peer.meta_gradients(spec, jax_peer.params_from(model), arrays)
    assert benchmark.grad_rel_err(ours, {**gw, **gn}, False)[0] > benchmark.JAX_GRAD_RTOL


def test_without_jax_the_rows_say_not_installed(tmp_path, monkeypatch):
    monkeypatch.setattr(jax_peer, 'available', lambda: False)
    out = tmp_path / 'b.json'
    assert benchmark.main(['d', '--modes', 'jax', 'jax_scan', '--no-isolate', '--no-flops', '--repeats', '1',
                           '--warmup', '0', '--json', str(out), '--markdown', str(tmp_path / 'b.md')]) == 0
    rows = json.loads(out.read_text())['results']
    assert [(r['mode'], r['skipped']) for r in rows] == [('jax', 'jax not installed'), ('jax_scan', 'jax not installed')]
    assert '| d | jax | jax not installed |' in (tmp_path / 'b.md').read_text()


@pytest.mark.parametrize('stride, size', [(1, 84), (2, 28), (2, 7)])
def test_im2col_convolution_is_lax_conv(stride, size):
    """The `jax_im2col` peer's convolution equals lax.conv_general_dilated 'SAME' (the `jax` peer's)."""
    jax = pytest.importorskip('jax')
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(3, size, size, 4)).astype(np.float32)
    k = rng.normal(size=(3, 3, 4, 5)).astype(np.float32)
    ref = jax.lax.conv_general_dilated(x, k, (stride, stride), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    np.testing.assert_allclose(np.asarray(jax_peer._im2col_conv(x, k, (stride, stride))), np.asarray(ref),
                               rtol=1e-5, atol=1e-5)
