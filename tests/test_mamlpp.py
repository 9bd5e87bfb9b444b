"""MAML++ switches: the released schedules' exact values, MAML's numbers with the switches neutral, finite
differences through LSLR + per-step BN + MSL, and bit-identical resumes of every inner-loop learner."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_directional_derivative
from learners import anil
import maml
from learners import mamlpp
from learners import metasgd
from config import Config

F64 = tf.float64


def _sine_batch(seed, tasks=3, dtype=tf.float32):
    rng = np.random.RandomState(seed)
    x = rng.uniform(-5, 5, size=(tasks, 10, 1))
    y = rng.uniform(0.1, 5, (tasks, 1, 1)) * np.sin(x - rng.uniform(0, np.pi, (tasks, 1, 1)))
    return [tf.constant(v, dtype) for v in (x[:, :5], y[:, :5], x[:, 5:], y[:, 5:])]


def _conv_batch(seed, dtype=tf.float32):
    """2 tasks of a 2-way 1-shot Omniglot-sized problem with random images."""
    rng = np.random.RandomState(seed)
    labels = np.repeat(np.eye(2)[None], 2, 0)
    return [tf.constant(rng.uniform(size=(2, 2, 784)), dtype), tf.constant(labels, dtype),
            tf.constant(rng.uniform(size=(2, 2, 784)), dtype), tf.constant(labels, dtype)]


def _sine_config(**changes):
    return Config(**{**dict(datasource='sinusoid', update_batch_size=5, num_updates=2, update_lr=0.01, norm='None',
                            seed=4, xla=False), **changes})


def _spread(model, seed=0):
    """Redraws the weights N(0, 0.5): the fc net's initial activations (stddev 0.01) are so small that a
    finite-difference step flips ReLUs."""
    rng = np.random.RandomState(seed)
    for v in model.weights.values():
        v.assign(rng.normal(0, 0.5, v.shape))


def _conv_config(**changes):
    return Config(**{**dict(datasource='omniglot', num_classes=2, update_batch_size=1, num_updates=2, update_lr=0.4,
                            num_filters=3, seed=3, xla=False), **changes})


# ---------------------------------------------------------------- schedules
def test_msl_weights_are_the_released_schedule():
    """The anchors' values (N=5; E=10 Omniglot, E=15 MiniImagenet) and a line-by-line numpy transcription of
    get_per_step_loss_importance_vector, to the last bit."""
    def released(epoch, n, e):
        w = np.ones(n) * (1.0 / n)
        decay, low = 1.0 / n / e, 0.03 / n
        for i in range(n - 1):
            w[i] = np.maximum(w[i] - epoch * decay, low)
        w[-1] = np.minimum(w[-1] + epoch * (n - 1) * decay, 1.0 - (n - 1) * low)
        return w
    expected = {0: [0.2] * 5, 1: [0.18] * 4 + [0.28], 5: [0.1] * 4 + [0.6], 9: [0.02] * 4 + [0.92],
                10: [0.006] * 4 + [0.976]}
    for epoch, values in expected.items():
        got = mamlpp.msl_weights(epoch, 5, 10).numpy()
        np.testing.assert_allclose(got, values, rtol=1e-12, atol=0)
        np.testing.assert_array_equal(got, released(epoch, 5, 10))
    for epoch, (other, last) in {7: (0.2 - 7 / 75, 0.2 + 28 / 75), 14: (0.2 - 14 / 75, 0.2 + 56 / 75)}.items():
        got = mamlpp.msl_weights(epoch, 5, 15).numpy()
        np.testing.assert_allclose(got, [other] * 4 + [last], rtol=1e-12)
        np.testing.assert_array_equal(got, released(epoch, 5, 15))
    np.testing.assert_allclose(mamlpp.msl_weights(7, 5, 15).numpy()[[0, 4]], [0.10666667, 0.57333333], atol=1e-8)
    np.testing.assert_array_equal(mamlpp.msl_weights(3, 1, 10).numpy(), [1.0])


def test_schedule_switches_at_the_released_epochs():
    """MSL while epoch < E; first order while epoch <= first_order_epochs (released: second order iff
    epoch > N); an epoch is iterations_per_epoch iterations."""
    model = mamlpp.MAMLPlusPlus(1, 1, 2, Config(norm='None', num_updates=2, multi_step_loss=True,
                                                multi_step_loss_epochs=2, first_order_epochs=1,
                                                iterations_per_epoch=3, xla=False))
    got = [model.schedule(i) for i in range(10)]
    assert got == [(True, True)] * 6 + [(False, False)] * 4
    off = mamlpp.MAMLPlusPlus(1, 1, 2, Config(norm='None', lslr=True, xla=False))
    assert off.schedule(10 ** 6) == (False, False)


def test_cosine_meta_lr_follows_torch_closed_form():
    """The Adam learning rate during epoch e is min + (lr - min)(1 + cos(pi e / T)) / 2, T = epochs of the run."""
    config = Config(norm='None', num_updates=1, cosine_meta_lr=True, meta_lr=1e-3, min_meta_lr=1e-5,
                    iterations_per_epoch=2, metatrain_iterations=8, xla=False)
    model = mamlpp.MAMLPlusPlus(1, 1, 1, config, dtype=F64)
    seen = []
    for i in range(8):
        model.metatrain_step(*_sine_batch(i, dtype=F64))
        seen.append(float(model.metatrain_optimizer.learning_rate.numpy()))
    expected = [1e-5 + (1e-3 - 1e-5) * (1 + np.cos(np.pi * (i // 2) / 4)) / 2 for i in range(8)]
    np.testing.assert_allclose(seen, expected, rtol=1e-15)
    assert seen[0] == 1e-3 and int(model.iteration.numpy()) == 8


def test_learner_class_is_plain_maml_unless_a_switch_is_on():
    assert mamlpp.learner_class(Config()) is maml.MAML
    assert mamlpp.learner_class(Config(multi_step_loss_epochs=3, iterations_per_epoch=7)) is maml.MAML
    for switch in (dict(multi_step_loss=True), dict(first_order_epochs=0), dict(lslr=True), dict(per_step_bn=True),
                   dict(per_step_bn_stats=True), dict(cosine_meta_lr=True)):
        assert mamlpp.learner_class(Config(**switch)) is mamlpp.MAMLPlusPlus


# ---------------------------------------------------------------- numbers
@pytest.mark.parametrize('switches', [dict(lslr=True), dict(lslr=True, per_step_bn=True), dict(first_order_epochs=-1)],
                         ids=['lslr', 'lslr_per_step_bn', 'none'])
def test_neutral_switches_give_mamls_step_bit_for_bit(switches):
    """LSLR rates at update_lr and per-step betas / gammas all equal (as they start: 0 / 1) change no number of
    the first step (fc net with batch norm, float32): the loss and every updated weight equal MAML's. With
    --per_step_bn the loss is MAML's bit for bit but the gamma factor (1, exact in the forward pass)
    regroups the sums of the second-order meta-gradient: the matrices and the output bias agree to float32
    rounding, and the biases b1, b2 before a batch norm are not compared (their meta-gradient is zero but
    for rounding, which Adam scales to a full step)."""
    config = _sine_config(norm='batch_norm', **switches)
    batch = _sine_batch(0)
    ref, model = maml.MAML(1, 1, 2, config), mamlpp.MAMLPlusPlus(1, 1, 2, config)
    assert ref.metatrain_step(*batch).numpy() == model.metatrain_step(*batch).numpy()
    for k, v in ref.weights.items():
        if config.per_step_bn:
            if k not in ('b1', 'b2'):
                np.testing.assert_allclose(model.weights[k].numpy(), v.numpy(), rtol=1e-5, atol=1e-9, err_msg=k)
        else:
            np.testing.assert_array_equal(v.numpy(), model.weights[k].numpy(), err_msg=k)


@pytest.mark.slow
def test_first_order_epochs_step_equals_stop_grad_maml():
    """In a first-order epoch the step is MAML --stop_grad's, bit for bit; afterwards the second-order one."""
    config = _conv_config(first_order_epochs=0, iterations_per_epoch=1)
    batch = _conv_batch(1, F64)
    model = mamlpp.MAMLPlusPlus(784, 2, 2, config, dtype=F64)
    first = maml.MAML(784, 2, 2, _conv_config(stop_grad=True), dtype=F64)
    assert model.metatrain_step(*batch).numpy() == first.metatrain_step(*batch).numpy()
    for k, v in first.weights.items():
        np.testing.assert_array_equal(v.numpy(), model.weights[k].numpy(), err_msg=k)
    second = maml.MAML(784, 2, 2, _conv_config(), dtype=F64)
    opt, opt2 = model.metatrain_optimizer, second.metatrain_optimizer
    for k, v in second.meta_variables.items():
        v.assign(model.meta_variables[k])
        opt2.m[k].assign(opt.m[k])
        opt2.v[k].assign(opt.v[k])
    opt2.beta1_power.assign(opt.beta1_power)
    opt2.beta2_power.assign(opt.beta2_power)
    batch = _conv_batch(2, F64)
    assert model.metatrain_step(*batch).numpy() == second.metatrain_step(*batch).numpy()   # epoch 1
    for k, v in second.weights.items():
        np.testing.assert_array_equal(v.numpy(), model.weights[k].numpy(), err_msg=k)
    assert list(model._functions) == ['metatrain_msl0_fo1', 'metatrain_msl0_fo0']


def test_msl_meta_gradient_is_the_weighted_sum_of_the_per_step_meta_gradients():
    """MSL's meta-gradient = sum_j w_j * (MAML's meta-gradient with j+1 steps), float64, at epoch 1 of E=3."""
    config = _sine_config(num_updates=3, multi_step_loss=True, multi_step_loss_epochs=3, iterations_per_epoch=1)
    batch = _sine_batch(2, dtype=F64)
    model = mamlpp.MAMLPlusPlus(1, 1, 3, config, dtype=F64)
    model.iteration.assign(1)
    model._msl = True
    _, grads = model.meta_gradients(*batch)
    weights = mamlpp.msl_weights(1, 3, 3).numpy()
    expected = {k: 0.0 for k in grads}
    for j in range(3):
        ref = maml.MAML(1, 1, 3, config.replace(multi_step_loss=False, num_updates=j + 1), dtype=F64)
        _, g = ref.meta_gradients(*batch)
        expected = {k: expected[k] + weights[j] * g[k].numpy() for k in expected}
    for k in grads:
        np.testing.assert_allclose(grads[k].numpy(), expected[k], rtol=1e-12, atol=1e-15, err_msg=k)


def test_meta_gradient_with_every_switch_matches_finite_differences():
    """Second order through LSLR rates and per-step betas under MSL (2 steps, batch norm), float64: the
    directional derivative along a random unit direction over all meta-variables to 1e-7 relative."""
    config = _conv_config(lslr=True, per_step_bn=True, multi_step_loss=True, iterations_per_epoch=1,
                          multi_step_loss_epochs=4)
    model = mamlpp.MAMLPlusPlus(784, 2, 2, config, dtype=F64)
    batch = _conv_batch(2, F64)
    rng = np.random.RandomState(5)
    for k, v in model.norm_weights.items():       # rows that differ, so that a wrong row would show
        v.assign(float(k.endswith('gamma')) + rng.normal(0, 0.1, v.shape))
    for v in model.inner_lrs.values():
        v.assign(rng.uniform(0.2, 0.5, v.shape))
    model.iteration.assign(1)
    model._msl = True
    _, grads = model.meta_gradients(*batch)
    assert all(np.any(grads[k].numpy() != 0) for k in grads), 'a meta-variable without a meta-gradient'
    def objective():
        _, totals2 = model._metalearn(*batch, 2)
        return float(model.meta_objective(totals2))
    assert_directional_derivative(model, grads, objective, rng)


@pytest.mark.slow
def test_per_step_bn_uses_row_j_at_inner_step_j():
    """With per-step betas, evaluating equals a MAML whose beta is row j wherever MAML++ uses row j: checked
    via one step (row 0 everywhere) against MAML with beta = row 0, and a change of row 1 changing step 2 only."""
    config = _conv_config(per_step_bn=True)
    batch = _conv_batch(3, F64)
    model = mamlpp.MAMLPlusPlus(784, 2, 2, config, dtype=F64)
    rng = np.random.RandomState(6)
    for v in model.norm_weights.values():
        v.assign(rng.normal(0, 0.3, v.shape))
    ref = maml.MAML(784, 2, 2, _conv_config(), dtype=F64)
    for k, v in ref.norm_weights.items():
        v.assign(model.norm_weights[k][0])
    out, want = model.evaluate(*batch, num_updates=2), ref.evaluate(*batch, num_updates=2)
    assert float(out.total_loss1) == float(want.total_loss1)
    assert float(out.total_losses2[0]) == float(want.total_losses2[0])
    assert float(out.total_losses2[1]) != float(want.total_losses2[1])


def test_per_step_gamma_row_j_gets_gradient_only_through_step_j():
    """BNWB's batch-norm gammas (ones, [N, C]): the pre-update support loss and the query loss after one step
    depend on row 0 only (row 1's gradient is exactly zero), the query loss after two steps on both rows."""
    config = _conv_config(per_step_bn=True)
    model = mamlpp.MAMLPlusPlus(784, 2, 2, config, dtype=F64)
    gammas = {k: v for k, v in model.norm_weights.items() if k.endswith('/gamma')}
    assert sorted(gammas) == ['0/gamma', '1/gamma', '2/gamma', '3/gamma']
    assert all(np.array_equal(v.numpy(), np.ones([2, 3])) for v in gammas.values())
    assert set(gammas) <= set(model.meta_variables)
    with tf.GradientTape(persistent=True) as tape:
        out, totals2 = model._metalearn(*_conv_batch(4, F64), 2)
    for loss, rows in ((out.total_loss1, [0]), (totals2[0], [0]), (totals2[1], [0, 1])):
        grads = tape.gradient(loss, gammas)
        for k, g in grads.items():
            for j in range(2):
                assert np.any(g.numpy()[j] != 0) == (j in rows), (k, j)


def _hand_conv_net(model, x, moments=None):
    """The conv net (no max-pool: stride-2 'SAME' convs) on one task's images x [rows, 784] in numpy / tf.nn,
    normalising with `moments` [(mean, variance)] per layer or the batch's own; returns (logits, the batch's
    (mean, biased variance, count) per layer)."""
    w = {k: v.numpy() for k, v in model.weights.items()}
    h, seen = x.reshape(-1, 28, 28, 1), []
    for i in range(4):
        h = tf.nn.conv2d(h, w['conv%d' % (i + 1)], 2, 'SAME').numpy() + w['b%d' % (i + 1)]
        seen.append((h.mean((0, 1, 2)), h.var((0, 1, 2)), h.size // h.shape[-1]))
        mean, var = moments[i] if moments is not None else seen[-1][:2]
        h = np.maximum((h - mean) / np.sqrt(var + 1e-3) + model.norm_weights['%d/beta' % i].numpy(), 0)
    return h.mean((1, 2)) @ w['w5'] + w['b5'], seen


def test_running_stats_start_as_the_released_network_leaves_them():
    """zeros / ones but row 0's variance, 0.81 = 0.9^2: what the released VGGReLUNormNetwork(per_step_bn_statistics,
    5 steps) holds once built, read off it with torch 2.13 (its two build passes of an all-zero batch)."""
    model = mamlpp.MAMLPlusPlus(784, 2, 2, _conv_config(per_step_bn_stats=True, num_updates=5), dtype=F64)
    assert sorted(model.bn_stats) == sorted('%d/running_%s' % (i, n) for i in range(4) for n in ('mean', 'variance'))
    for i in range(4):
        np.testing.assert_array_equal(model.bn_stats['%d/running_mean' % i].numpy(), np.zeros([5, 3]))
        np.testing.assert_allclose(model.bn_stats['%d/running_variance' % i].numpy(),
                                   [[0.81] * 3] + [[1.0] * 3] * 4, rtol=1e-15)


@pytest.mark.parametrize('msl', [pytest.param(False, marks=pytest.mark.slow), True], ids=['last_query', 'msl'])
def test_running_stats_after_two_steps_are_the_momentum_formula(msl):
    """Two meta-steps with update_lr 0 and meta_lr 0 (every pass sees the same weights, so hand moments of the
    meta-weights' net are every pass's): row j = the torch momentum-0.1 updates from the released start, meta-step
    after meta-step and task after task, from the batch moments (variance * n/(n-1)) of the passes the released
    code indexes with num_step=j, in the order it runs them: row 0 the support pass of step 0 then (MSL only) the
    query pass after it, row 1 the support pass of step 1 then the query pass after it."""
    config = _conv_config(per_step_bn_stats=True, update_lr=0.0, meta_lr=0.0, multi_step_loss=msl)
    model = mamlpp.MAMLPlusPlus(784, 2, 2, config, dtype=F64)
    batches = [_conv_batch(5, F64), _conv_batch(8, F64)]
    rows = [['a', 'b'] if msl else ['a'], ['a', 'b']]
    for batch in batches:
        model.metatrain_step(*batch)
    for i in range(4):
        for row, order in enumerate(rows):
            mean, var = np.zeros(3), np.full(3, 0.81 if row == 0 else 1.0)
            for batch in batches:
                for b in range(2):
                    for p in order:
                        m, v, n = _hand_conv_net(model, batch[0 if p == 'a' else 2].numpy()[b])[1][i]
                        mean, var = 0.9 * mean + 0.1 * m, 0.9 * var + 0.1 * v * n / (n - 1)
            np.testing.assert_allclose(model.bn_stats['%d/running_mean' % i].numpy()[row], mean, rtol=1e-9,
                                       atol=1e-12, err_msg=(i, row))
            np.testing.assert_allclose(model.bn_stats['%d/running_variance' % i].numpy()[row], var, rtol=1e-9,
                                       err_msg=(i, row))


def test_per_step_bn_stats_normalise_nothing_and_evaluation_keeps_them():
    """As the released code (F.batch_norm(training=True) in every pass): with any running statistics, evaluate
    gives the flagless learner's outputs bit for bit (batch statistics) and leaves the statistics as they were
    (the released backup / restore's intent), and the meta-step's loss and weights are the flagless learner's."""
    model = mamlpp.MAMLPlusPlus(784, 2, 2, _conv_config(per_step_bn_stats=True), dtype=F64)
    ref = mamlpp.MAMLPlusPlus(784, 2, 2, _conv_config(), dtype=F64)
    rng = np.random.RandomState(7)
    for k, v in model.bn_stats.items():
        v.assign(rng.normal(0, 0.3, v.shape) if k.endswith('mean') else rng.uniform(0.5, 2.0, v.shape))
    for k, v in model.norm_weights.items():
        v.assign(rng.normal(0, 0.3, v.shape))
        ref.norm_weights[k].assign(v)
    stats = {k: v.numpy().copy() for k, v in model.bn_stats.items()}
    batch = _conv_batch(6, F64)
    out, want = model.evaluate(*batch, num_updates=3), ref.evaluate(*batch, num_updates=3)   # 3 > N: row N-1
    for field, a, b in zip(out._fields, out, want):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=field)
    for k, v in model.bn_stats.items():
        np.testing.assert_array_equal(v.numpy(), stats[k], err_msg=k)
    assert model.metatrain_step(*batch).numpy() == ref.metatrain_step(*batch).numpy()
    for k, v in ref.meta_variables.items():
        np.testing.assert_array_equal(v.numpy(), model.meta_variables[k].numpy(), err_msg=k)
    assert any(np.any(v.numpy() != stats[k]) for k, v in model.bn_stats.items())   # the meta-step updated them


def test_diagnostic_hook_normalises_with_row_j():
    """scripts/diagnose_bn_stats.py's `_normalise_with_running_stats` (the pre-2026-12-07 evaluation): the
    pre-update loss is the hand-computed net normalised with row 0, and row 1 reaches only the second step's
    support and query passes."""
    model = mamlpp.MAMLPlusPlus(784, 2, 2, _conv_config(per_step_bn_stats=True), dtype=F64)
    rng = np.random.RandomState(7)
    for k, v in model.bn_stats.items():
        v.assign(rng.normal(0, 0.3, v.shape) if k.endswith('mean') else rng.uniform(0.5, 2.0, v.shape))
    batch = _conv_batch(6, F64)
    row0 = [(model.bn_stats['%d/running_mean' % i].numpy()[0], model.bn_stats['%d/running_variance' % i].numpy()[0])
            for i in range(4)]
    logits = [_hand_conv_net(model, batch[0].numpy()[b], row0)[0] for b in range(2)]
    want = np.mean([float(tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits(batch[1][b], logits[b])))
                    for b in range(2)])

    def losses():
        model._normalise_with_running_stats = True
        try:
            out = model.metalearn(*batch, 2)
        finally:
            model._normalise_with_running_stats = False
        return [float(out.total_loss1), *map(float, out.total_losses2)]
    before = losses()
    np.testing.assert_allclose(before[0], want, rtol=1e-12)
    model.bn_stats['2/running_mean'].assign_add(np.array([[0, 0, 0], [0.5, -0.5, 0.5]]))
    assert [x != y for x, y in zip(before, losses())] == [False, False, True]


def test_per_step_bn_stats_needs_batch_norm():
    with pytest.raises(ValueError, match='--norm=batch_norm'):
        mamlpp.MAMLPlusPlus(1, 1, 2, _sine_config(norm='layer_norm', per_step_bn_stats=True))


def test_per_step_bn_stats_has_no_warning_and_says_what_it_does():
    """The flag changes no number any more (it is the released code's bookkeeping): main.py warns of nothing, and
    its help says it never normalises."""
    import dataclasses
    import main
    assert main.config_warnings(Config(datasource='omniglot', per_step_bn_stats=True, num_updates=5)) == []
    (field,) = [f for f in dataclasses.fields(Config) if f.name == 'per_step_bn_stats']
    assert 'never normalise' in field.metadata['help'] and 'no output changes' in field.metadata['help']


# ---------------------------------------------------------------- resume
LEARNERS = {
    'mamlpp': (mamlpp.MAMLPlusPlus, dict(multi_step_loss=True, multi_step_loss_epochs=2, first_order_epochs=0,
                                         lslr=True, per_step_bn=True, per_step_bn_stats=True, cosine_meta_lr=True,
                                         iterations_per_epoch=2, metatrain_iterations=8)),
    'metasgd': (metasgd.MetaSGD, dict(lslr=True, multi_step_loss=True, multi_step_loss_epochs=2,
                                      iterations_per_epoch=2)),
    'metasgd_plain': (metasgd.MetaSGD, {}),
    'anil': (anil.ANIL, dict(first_order_epochs=0, cosine_meta_lr=True, iterations_per_epoch=2,
                             metatrain_iterations=8)),
}


def _state(model):
    """Every variable of the learner (weights, norm weights, inner step sizes, both Adams, the clock)."""
    return {str(i) + ':' + v.name: v.numpy().copy() for i, v in enumerate(model.variables)}


@pytest.mark.parametrize('name', [n if n == 'mamlpp' else pytest.param(n, marks=pytest.mark.slow) for n in LEARNERS])
def test_resumed_learner_continues_bit_for_bit(name, tmp_path):
    """8 steps straight equal 3 steps, a checkpoint of checkpoint_items() restored into a fresh learner, and 5
    more (the MSL / first-order / cosine schedules change on the way), in every variable."""
    cls, switches = LEARNERS[name]
    config = _sine_config(norm='batch_norm', **switches)
    batches = [_sine_batch(10 + i) for i in range(8)]
    whole = cls(1, 1, 2, config)
    for b in batches:
        whole.metatrain_step(*b)
    first = cls(1, 1, 2, config)
    for b in batches[:3]:
        first.metatrain_step(*b)
    prefix = tf.train.Checkpoint(**first.checkpoint_items()).write(str(tmp_path / 'ckpt'))
    resumed = cls(1, 1, 2, config.replace(seed=99))             # other initial values everywhere
    tf.train.Checkpoint(**resumed.checkpoint_items()).read(prefix).assert_existing_objects_matched()
    assert int(resumed.iteration.numpy()) == 3
    for b in batches[3:]:
        resumed.metatrain_step(*b)
    a, b = _state(whole), _state(resumed)
    assert a.keys() == b.keys() and len(a) > 20
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
