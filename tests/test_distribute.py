"""--distribute=mirrored over --cpu_devices=2 equals one device (distribute.py), and its flags' usage errors.

TensorFlow splits the CPU into logical devices once per process, before it initialises them, so every check
that needs two devices runs in a fresh Python (`_run_child`), which builds the same learner twice from the same
seed, once on one device and once under MirroredStrategy, and compares the meta-gradient and the weights after 3
meta-updates (rtol 1e-5). Batch norm removes the effect of the biases before it (b1..b4 of the conv net): their
true meta-gradient is 0 and what is computed is rounding noise, which Adam's first steps turn into +-meta_lr
moves of either sign; for those the child checks that the gradient is noise (<= 1e-5 of the largest kernel
gradient) and the weights stay within the Adam steps taken (as scripts/golden_check.py treats them).
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import main
from config import Config
from conftest import REPO

CHILD = textwrap.dedent(r'''
    import json, sys
    sys.path.insert(0, REPO)
    import numpy as np
    import distribute
    distribute.split_cpu(2)
    import tensorflow as tf
    import main
    from config import Config
    cfg = Config(**json.loads(sys.argv[1]))
    dg = type('DG', (), {'dim_input': DIM_IN, 'dim_output': DIM_OUT})()

    def build(strategy):
        with distribute.scope(strategy):
            m = main.build_learner(cfg, dg)
        return distribute.distribute_learner(m, strategy)
    single = build(None)
    strategy = distribute.make_strategy(cfg.replace(distribute='mirrored'))
    assert strategy.num_replicas_in_sync == 2
    dist = build(strategy)
    rng = np.random.RandomState(0)
    B, rows = cfg.meta_batch_size, ROWS

    def batch():
        a, b = (rng.normal(size=[B, rows, DIM_IN]) for _ in range(2))
        if DIM_OUT == 1:
            la, lb = rng.normal(size=[B, rows, 1]), rng.normal(size=[B, rows, 1])
        else:
            la = lb = np.tile(np.eye(DIM_OUT), [B, rows // DIM_OUT, 1])
        return [tf.constant(x, tf.float32) for x in (a, la, b, lb)]
    for k in single.meta_variables:
        np.testing.assert_array_equal(single.meta_variables[k].numpy(), dist.meta_variables[k].numpy())
    pre_bn = [k for k in ('b1', 'b2', 'b3', 'b4') if cfg.norm == 'batch_norm' and cfg.datasource != 'sinusoid']
    x = batch()
    _, g1 = single.meta_gradients(*x)
    out, g2 = tf.function(dist.meta_gradients)(*x)
    kernel = max(float(np.max(np.abs(g1[k]))) for k in g1 if k not in pre_bn)
    for k in g1:
        if k in pre_bn:
            assert np.max(np.abs(g2[k])) <= 1e-5 * kernel, k
        else:
            np.testing.assert_allclose(g2[k], g1[k], rtol=1e-5, atol=1e-6 * kernel, err_msg=k)
    losses = []
    for i in range(3):
        x = batch()
        losses.append((float(single.metatrain_step(*x)), float(dist.metatrain_step(*x))))
    np.testing.assert_allclose(*zip(*losses), rtol=1e-5)
    for k, v in single.meta_variables.items():
        if k in pre_bn:
            assert np.max(np.abs(v.numpy() - dist.meta_variables[k].numpy())) <= 6 * cfg.meta_lr, k
        else:
            scale = np.max(np.abs(v.numpy()))
            np.testing.assert_allclose(dist.meta_variables[k].numpy(), v.numpy(), rtol=1e-5, atol=1e-6 * scale,
                                       err_msg=k)
    print('PARITY OK', losses)
''')


def _run_child(config, dim_in, dim_out, rows):
    code = CHILD.replace('REPO', repr(REPO)).replace('DIM_IN', str(dim_in)).replace('DIM_OUT', str(dim_out)) \
        .replace('ROWS', str(rows))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
    result = subprocess.run([sys.executable, '-c', code, json.dumps(config)], capture_output=True, text=True,
                            env=env, timeout=900)
    assert result.returncode == 0 and 'PARITY OK' in result.stdout, result.stdout + result.stderr[-4000:]


def test_mirrored_equals_one_device_sinusoid():
    """Sinusoid (the paper's fc net, no norm), 2 inner steps, B=4: meta-gradient and 3 meta-updates."""
    _run_child(dict(datasource='sinusoid', norm='None', meta_batch_size=4, update_batch_size=5, num_updates=2,
                    update_lr=0.01, seed=0), 1, 1, 5)


@pytest.mark.slow
def test_mirrored_equals_one_device_omniglot_batch_norm():
    """Omniglot's conv net with batch norm (4 filters), 5-way 1-shot, 2 inner steps, B=4 (per-task statistics)."""
    _run_child(dict(datasource='omniglot', norm='batch_norm', num_filters=4, meta_batch_size=4,
                    update_batch_size=1, num_updates=2, update_lr=0.4, seed=0), 784, 5, 5)


@pytest.mark.slow
def test_mirrored_equals_one_device_mamlpp_metasgd():
    """Meta-SGD with MAML++'s MSL, LSLR, per-step batch norm and cosine meta lr (its schedules run in the step)."""
    _run_child(dict(datasource='omniglot', method='metasgd', norm='batch_norm', num_filters=4, meta_batch_size=4,
                    update_batch_size=1, num_updates=2, update_lr=0.4, seed=0, multi_step_loss=True, lslr=True,
                    per_step_bn=True, cosine_meta_lr=True, metatrain_iterations=10, iterations_per_epoch=2),
               784, 5, 5)


def _main(tmp_path, *flags):
    return subprocess.run([sys.executable, os.path.join(REPO, 'main.py'), '--datasource=sinusoid', '--norm=None',
                           '--seed=0', '--meta_batch_size=4', '--update_batch_size=5', '--num_updates=2',
                           '--update_lr=0.01', f'--logdir={tmp_path}', *flags], capture_output=True, text=True,
                          timeout=900)


def _weights(prefix):
    import tensorflow as tf
    reader = tf.train.load_checkpoint(prefix)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k.startswith('weights/')}


@pytest.mark.slow
def test_main_mirrored_trains_and_resumes_across_replica_counts(tmp_path):
    """main.py: 4 meta-iterations on 2 replicas equal 4 on one device; 2 on 2 replicas resumed for 2 more on one
    device equal them too (the checkpoint does not depend on the replicas); B=5 on 2 replicas is one line."""
    import numpy as np
    one = _main(tmp_path / 'one', '--metatrain_iterations=4')
    two = _main(tmp_path / 'two', '--metatrain_iterations=4', '--cpu_devices=2', '--distribute=mirrored')
    half = _main(tmp_path / 'mixed', '--metatrain_iterations=2', '--cpu_devices=2', '--distribute=mirrored')
    assert one.returncode == two.returncode == half.returncode == 0, one.stderr + two.stderr + half.stderr
    rest = _main(tmp_path / 'mixed', '--metatrain_iterations=4')
    assert rest.returncode == 0 and 'Restoring model weights' in rest.stdout, rest.stdout + rest.stderr
    exp = 'cls_5.mbs_4.ubs_5.numstep2.updatelr0.01nonorm'
    ref = _weights(str(tmp_path / 'one' / exp / 'model3'))
    for run in ('two', 'mixed'):
        got = _weights(str(tmp_path / run / exp / 'model3'))
        assert ref.keys() == got.keys()
        for k in ref:
            np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-7, err_msg=f'{run} {k}')
    odd = _main(tmp_path / 'odd', '--metatrain_iterations=2', '--cpu_devices=2', '--distribute=mirrored',
                '--meta_batch_size=5')
    assert odd.returncode == 2 and odd.stderr.count('\n') == 1, odd.stderr
    assert '--meta_batch_size=5 does not split over 2 replicas' in odd.stderr


@pytest.mark.parametrize('changes,message', [
    (dict(distribute='horovod'), "unknown --distribute='horovod'"),
    (dict(cpu_devices=0), '--cpu_devices=0 must be >= 1'),
    (dict(distribute='mirrored', method='protonet', datasource='omniglot'), 'splits the tasks of an inner-loop'),
    (dict(distribute='mirrored', steps_per_execution=10), '--steps_per_execution runs one device'),
    (dict(distribute='mirrored', pretrain_iterations=10), 'splits meta-training only'),
    (dict(distribute='mirrored', datasource='omniglot', per_step_bn_stats=True), '--per_step_bn_stats updates'),
])
def test_usage_errors(changes, message):
    with pytest.raises(main.UsageError, match=message.replace('(', r'\(').replace('+', r'\+')) as err:
        main.check_config(Config(**changes))
    assert '\n' not in str(err.value) and ';' in str(err.value)


def test_meta_batch_must_split():
    import distribute
    with pytest.raises(distribute.Error, match='--meta_batch_size=5 does not split over 2 replicas; pass a multiple'):
        distribute.check_divisible(5, 2)
    distribute.check_divisible(6, 2)


def test_default_builds_no_strategy():
    """--distribute=none (the default) leaves the learner's step as it was: no strategy, no replaced member."""
    import distribute
    assert distribute.make_strategy(Config()) is None
    marker = object()
    assert distribute.distribute_learner(marker, None) is marker
