"""--remat (recomputed inner steps: same meta-gradient) and --precision / --tf32 (issue 16)."""
import functools
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

import main
from infra import checks
from infra import actions
import maml
from config import Config
from conftest import REPO

sys.path.insert(0, os.path.join(REPO, 'scripts'))
import golden_check  # noqa: E402


def _golden_with_remat(golden_dir, case, monkeypatch):
    """(golden_check.compute without and with --remat, the rows golden_check.compare gives the remat values)."""
    path = os.path.join(golden_dir, case + '.npz')
    plain = golden_check.compute(path, xla=True, task_groups=1)
    monkeypatch.setattr(golden_check, 'Config', functools.partial(Config, remat=True))
    recomputes = []
    gradient = tf.GradientTape.gradient

    def spy(tape, *args, **kwargs):   # the remat block's backward pass differentiates with output_gradients
        recomputes.append(kwargs.get('output_gradients') is not None)
        return gradient(tape, *args, **kwargs)
    monkeypatch.setattr(tf.GradientTape, 'gradient', spy)
    remat = golden_check.compute(path, xla=True, task_groups=1)
    return plain, remat, golden_check.compare(path, remat), sum(recomputes)


def _check_remat(golden_dir, case, monkeypatch, steps):
    plain, remat, rows, recomputes = _golden_with_remat(golden_dir, case, monkeypatch)
    assert [r for r in rows if not r[3]] == []
    assert recomputes >= steps    # every inner step of the meta-gradient was recomputed in the backward pass
    for key in plain:
        scale = max(float(np.max(np.abs(plain[key]))), 1e-30)
        assert np.max(np.abs(remat[key] - plain[key])) <= 1e-5 * scale, key


def test_remat_gives_the_golden_meta_gradient_sinusoid(golden_dir, monkeypatch):
    """sine_K5_steps3 (3 inner steps): with --remat every golden value matches, and equals the plain step's."""
    _check_remat(golden_dir, 'sine_K5_steps3', monkeypatch, 3)


@pytest.mark.slow
def test_remat_gives_the_golden_meta_gradient_batch_norm_conv(golden_dir, monkeypatch):
    _check_remat(golden_dir, 'omni_5w1s_bn', monkeypatch, 1)


def _sinusoid_batch(seed=0, tasks=4, rows=10):
    rng = np.random.RandomState(seed)
    amp, phase = rng.uniform(0.1, 5.0, [tasks, 1, 1]), rng.uniform(0, np.pi, [tasks, 1, 1])
    xa, xb = rng.uniform(-5, 5, [tasks, rows, 1]), rng.uniform(-5, 5, [tasks, rows, 1])
    return [tf.constant(v, tf.float32) for v in (xa, amp * np.sin(xa - phase), xb, amp * np.sin(xb - phase))]


def _sinusoid_model(**changes):
    config = Config(datasource='sinusoid', norm='None', meta_batch_size=4, update_batch_size=10, num_updates=2,
                    update_lr=0.01, seed=0, **changes)
    return maml.MAML(1, 1, 5, config)


@pytest.mark.parametrize('precision,tol', [('bfloat16', 5e-2), ('float16', 5e-3)])
def test_lower_precision_step_is_close_to_float32(precision, tol):
    """The sinusoid's meta-gradient and post-update loss in bfloat16 / float16 are float32's to the format's
    precision; the meta-gradient and the weights stay float32, and a meta-train step runs."""
    batch = _sinusoid_batch()
    ref, low = _sinusoid_model(), _sinusoid_model(precision=precision)
    assert low.compute_dtype == {'bfloat16': tf.bfloat16, 'float16': tf.float16}[precision]
    out_ref, g_ref = tf.function(ref.meta_gradients)(*batch)
    out_low, g_low = tf.function(low.meta_gradients)(*batch)
    np.testing.assert_allclose(out_low.total_losses2.numpy(), out_ref.total_losses2.numpy(), rtol=tol)
    for k in g_ref:
        assert g_low[k].dtype == tf.float32
        err = np.linalg.norm(g_low[k].numpy() - g_ref[k].numpy()) / np.linalg.norm(g_ref[k].numpy())
        assert err <= tol, (k, err)
    loss = low.metatrain_step(*batch)
    assert np.isfinite(float(loss)) and abs(float(loss) - float(ref.metatrain_step(*batch))) <= tol * float(loss)
    assert all(v.dtype == tf.float32 for v in low.meta_variables.values())


def test_lower_precision_computes_in_the_lower_format():
    """The network's matmuls run in bfloat16 (a float32 model has none)."""
    def dtypes(model):
        graph = tf.function(model.meta_gradients).get_concrete_function(*_sinusoid_batch()).graph
        return {op.get_attr('T') for op in graph.get_operations() if op.type in ('MatMul', 'BatchMatMulV2',
                                                                                   'BatchMatMulV3')}
    assert tf.bfloat16 in dtypes(_sinusoid_model(precision='bfloat16'))
    assert dtypes(_sinusoid_model()) == {tf.float32}


def test_default_precision_leaves_the_learner_alone():
    """float32 (the default) replaces nothing on the instance and scales no loss: today's compiled step."""
    model = _sinusoid_model()
    assert model.compute_dtype == tf.float32 and model.loss_scale is None
    assert 'forward' not in vars(model) or vars(model)['forward'] == model.forward_fc
    assert '_norm' not in vars(model)


def test_float16_loss_scale_is_the_flag_and_can_overflow():
    """--loss_scale is the factor of the float16 losses; on an Omniglot-shaped conv net with batch norm the
    former fixed 128 overflows float16 in the first inner gradient (the real 2000-iteration run diverged at
    iteration 0), and 1 does not."""
    rng = np.random.default_rng(0)
    batch = [tf.constant(rng.uniform(0, 1, size=(2, 5, 784)).astype(np.float32)),   # pixel-like: positive
             tf.constant(np.tile(np.eye(5, dtype=np.float32), (2, 1, 1)))] * 2
    finite = {}
    for scale in (128.0, 1.0):
        config = Config(datasource='omniglot', num_classes=5, meta_batch_size=2, update_batch_size=1,
                        update_lr=0.4, seed=0, xla=False, precision='float16', loss_scale=scale)
        model = maml.MAML(784, 5, 1, config)
        assert model.loss_scale == scale
        grads = model.meta_gradients(*batch)[1]
        finite[scale] = all(bool(np.all(np.isfinite(g.numpy()))) for g in grads.values())
    assert finite == {128.0: False, 1.0: True}


def test_tf32_off_by_default():
    from infra import distribute
    distribute.set_tf32(Config().tf32)
    assert not tf.config.experimental.tensor_float_32_execution_enabled()
    distribute.set_tf32(True)
    assert tf.config.experimental.tensor_float_32_execution_enabled()
    distribute.set_tf32(False)


@pytest.mark.parametrize('changes,message', [
    (dict(precision='float64'), "unknown --precision='float64'"),
    (dict(precision='bfloat16', method='protonet', datasource='omniglot'), '--precision applies to the inner-loop'),
    (dict(remat=True, method='reptile'), '--remat applies to the inner-loop'),
    (dict(precision='bfloat16', datasource='omniglot', per_step_bn_stats=True), '--per_step_bn_stats keeps float32'),
    (dict(remat=True, datasource='omniglot', per_step_bn_stats=True), '--per_step_bn_stats records'),
    (dict(loss_scale=1.0), '--loss_scale=1 applies to --precision=float16 only'),
    (dict(loss_scale=0.0, precision='float16'), '--loss_scale=0 must be a positive number'),
])
def test_usage_errors(changes, message):
    with pytest.raises(main.UsageError, match=message.replace('(', r'\(')) as err:
        main.check_config(Config(**changes))
    assert '\n' not in str(err.value) and ';' in str(err.value)


def test_memory_plot_redraws_saved_rows(tmp_path, capsys):
    import memory_remat
    rows = [dict(mode='function', setting='c', num_updates=n, remat=r, device='CPU', alloc_before_mb=40.0,
                 alloc_peak_mb=40.0 + n * (300 if r else 500), before_mb=600.0, peak_mb=9000.0, step_s=1.0)
            for n in (1, 5) for r in (False, True)]
    rows.append(dict(mode='function', setting='c', num_updates=20, remat=False, error='killed by signal 9: ...'))
    saved = tmp_path / 'rows.json'
    saved.write_text(__import__('json').dumps(rows))
    out = tmp_path / 'memory.png'
    memory_remat.main(['--from_json', str(saved), '--plot', str(out)])
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    axes = memory_remat.memory_figure(rows).axes[0]
    lines = {line.get_label(): list(line.get_ydata()) for line in axes.get_lines()}
    assert lines == {'tf.function, no XLA': [500.0, 2500.0], 'tf.function, no XLA, --remat': [300.0, 1500.0]}
    with pytest.raises(SystemExit):
        memory_remat.main(['--from_json', str(tmp_path / 'missing.json'), '--plot', str(out)])
    assert 'cannot read rows from --from_json' in capsys.readouterr().err


@pytest.mark.slow
def test_memory_measure_reports_the_allocator_peak():
    """A fresh process measures one step of the tiny setting: the allocator rose above the weights during the step,
    and a step with 3 inner steps allocated more than one with 1."""
    import memory_remat
    rows = [memory_remat.measure('tiny', n, False, 'function', 1) for n in (1, 3)]
    assert [r['device'] for r in rows] == ['CPU', 'CPU']
    assert all(r['alloc_peak_mb'] > r['alloc_before_mb'] > 0 for r in rows)
    assert memory_remat.needed_mb(rows[1]) > memory_remat.needed_mb(rows[0])
    failed = memory_remat.measure('no_such_setting', 1, False, 'function', 1)
    assert failed['error'].startswith('exit status 1: KeyError') and 'alloc_peak_mb' not in failed


def test_float16_divergence_error_names_the_loss_scale():
    from types import SimpleNamespace
    e = SimpleNamespace(config=Config(precision='float16', loss_scale=128.0), restored_from=None,
                        checkpointer=SimpleNamespace(kept=[]))
    with pytest.raises(checks.TrainingDiverged) as err:
        actions.diverged(e, None, 0, 'the meta-training objective is nan')
    assert str(err.value).endswith('(with --precision=float16 the likely cause is a float16 overflow of the scaled '
                                   'gradients: lower --loss_scale, now 128, or use --precision=bfloat16)')
    with pytest.raises(checks.TrainingDiverged) as err:
        actions.diverged(SimpleNamespace(**dict(vars(e), config=Config())), None, 0, 'the meta-training objective is nan')
    assert 'loss_scale' not in str(err.value)
