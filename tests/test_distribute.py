"""--distribute=mirrored over --cpu_devices=2 equals one device (distribute.py), and its flags' usage errors.

TensorFlow splits the CPU into logical devices once per process, before it initialises them, so every check
that needs two devices runs in a fresh Python (`_run_child`), which builds the same learner twice from the same
seed, once on one device and once under MirroredStrategy, and compares the meta-gradient and the weights after 3
meta-updates (rtol 1e-5). Batch norm removes the effect of the biases before it (b1..b4 of the conv net): their
true meta-gradient is 0 and what is computed is rounding noise, which Adam's first steps turn into +-meta_lr
moves of either sign; for those the child checks that the gradient is noise (<= 1e-5 of the largest kernel
gradient) and the weights stay within the Adam steps taken (as scripts/golden_check.py treats them).

The learners that split otherwise (issue 26: ProtoNets / Matching Nets' query rows, the baselines' pre-training
rows, Reptile --inner_sgd's tasks) run SPLIT_CHILD: the learner built twice from one seed, one device and
replicated (2 logical CPUs, or 2 worker processes of a TF_CONFIG cluster), fed the same batches; the first
gradient, the losses and the weights, head and batch-norm running averages after 3 updates agree (rtol 1e-5),
entries whose true gradient is 0 within the Adam steps taken.
"""
import json
import os
import signal
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
    from infra import distribute
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
    (dict(distribute='mirrored', method='reptile', datasource='omniglot'), "cannot split Reptile's tasks with its inner Adam"),
    (dict(distribute='mirrored', steps_per_execution=10), '--steps_per_execution runs one device'),
    (dict(distribute='mirrored', pretrain_iterations=10), 'splits meta-training only'),
    (dict(distribute='mirrored', datasource='omniglot', per_step_bn_stats=True), '--per_step_bn_stats updates'),
])
def test_usage_errors(changes, message):
    with pytest.raises(main.UsageError, match=message.replace('(', r'\(').replace('+', r'\+')) as err:
        main.check_config(Config(**changes))
    assert '\n' not in str(err.value) and ';' in str(err.value)


def test_meta_batch_must_split():
    from infra import distribute
    with pytest.raises(distribute.Error, match='--meta_batch_size=5 does not split over 2 replicas; pass a multiple'):
        distribute.check_divisible(5, 2)
    distribute.check_divisible(6, 2)


def test_default_builds_no_strategy():
    """--distribute=none (the default) leaves the learner's step as it was: no strategy, no replaced member."""
    from infra import distribute
    assert distribute.make_strategy(Config()) is None
    marker = object()
    assert distribute.distribute_learner(marker, None) is marker


# ------------------------------------------------------------------------------------ --distribute=multi_worker
CLUSTER = {'worker': ['127.0.0.1:2222', '127.0.0.1:2223']}


def _tf_config(cluster=None, kind='worker', index=0):
    return {'TF_CONFIG': json.dumps({'cluster': cluster or CLUSTER, 'task': {'type': kind, 'index': index}})}


@pytest.mark.parametrize('value,message', [
    (None, '--distribute=multi_worker needs the TF_CONFIG environment variable'),
    ('{"cluster": ', 'TF_CONFIG is not JSON'),
    ('{"task": {"type": "worker", "index": 0}}', 'TF_CONFIG needs a "cluster"'),
    (json.dumps({'cluster': CLUSTER}), 'TF_CONFIG needs a "cluster" (job -> host:port list) and a "task"'),
    (_tf_config(index=2)['TF_CONFIG'], "TF_CONFIG's task 'worker' 2 is not in its cluster (worker 0..1)"),
    (_tf_config(kind='chief')['TF_CONFIG'], "TF_CONFIG's task 'chief' 0 is not in its cluster"),
    (_tf_config(dict(CLUSTER, ps=['h:1']))['TF_CONFIG'], "TF_CONFIG has a 'ps' job"),
    (_tf_config({'worker': ['127.0.0.1']})['TF_CONFIG'], "address '127.0.0.1', not host:port"),
    (_tf_config(dict(CLUSTER, chief=['a:1', 'b:1']))['TF_CONFIG'], 'TF_CONFIG has 2 chief tasks'),
])
def test_tf_config_errors(monkeypatch, value, message):
    """A TF_CONFIG that cannot work is one line from check_config (before any strategy waits for workers)."""
    from infra import distribute
    if value is None:
        monkeypatch.delenv('TF_CONFIG', raising=False)
    else:
        monkeypatch.setenv('TF_CONFIG', value)
    main.check_config(Config(distribute='multi_worker'))   # the flags alone: a documented command checks
    with pytest.raises(main.UsageError) as err:
        main.check_cluster(Config(distribute='multi_worker'))
    assert message in str(err.value) and '\n' not in str(err.value) and ';' in str(err.value), str(err.value)
    with pytest.raises(distribute.Error):
        distribute.tf_config()


@pytest.mark.parametrize('changes,message', [
    (dict(meta_batch_size=5), '--meta_batch_size=5 does not split over the 2 workers of TF_CONFIG; pass a multiple'),
    (dict(cpu_devices=2), '--cpu_devices splits one process\'s CPU'),
    (dict(method='reptile', datasource='omniglot'), "cannot split Reptile's tasks with its inner Adam"),
    (dict(steps_per_execution=10), '--steps_per_execution runs one device'),
])
def test_multi_worker_usage_errors(monkeypatch, changes, message):
    monkeypatch.setenv('TF_CONFIG', _tf_config()['TF_CONFIG'])
    with pytest.raises(main.UsageError) as err:
        c = Config(distribute='multi_worker', **changes)
        main.check_config(c)
        main.check_cluster(c)
    assert message in str(err.value) and '\n' not in str(err.value), str(err.value)
    for ok in (dict(meta_batch_size=4), dict(meta_batch_size=5, train=False)):   # testing: meta batch 1
        main.check_config(Config(distribute='multi_worker', **ok))
        main.check_cluster(Config(distribute='multi_worker', **ok))


def test_is_chief():
    """TensorFlow's chief: the task of type chief, else worker 0; without multi_worker every process is."""
    from infra import distribute
    multi = Config(distribute='multi_worker')
    with_chief = dict(CLUSTER, chief=['127.0.0.1:2224'])
    assert distribute.is_chief(multi, _tf_config())
    assert not distribute.is_chief(multi, _tf_config(index=1))
    assert distribute.is_chief(multi, _tf_config(with_chief, 'chief', 0))
    assert not distribute.is_chief(multi, _tf_config(with_chief, 'worker', 0))
    assert distribute.is_chief(Config(), {}) and distribute.is_chief(Config(distribute='mirrored'), _tf_config(index=1))
    assert distribute.num_workers(_tf_config(with_chief)) == 3
    assert distribute.task_name(_tf_config(index=1)) == 'worker 1'


def test_main_multi_worker_without_tf_config_is_one_line(tmp_path):
    """main.py reports a missing TF_CONFIG in one line, exit 2, before TensorFlow starts (nothing waits)."""
    env = {k: v for k, v in os.environ.items() if k != 'TF_CONFIG'}
    result = subprocess.run([sys.executable, os.path.join(REPO, 'main.py'), '--datasource=sinusoid',
                             '--distribute=multi_worker', f'--logdir={tmp_path}'], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 2 and result.stderr.count('\n') == 1, result.stderr
    assert 'needs the TF_CONFIG environment variable' in result.stderr
    assert not os.listdir(tmp_path)


def _free_ports(n):
    import socket
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(('127.0.0.1', 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _workers(logdir, iterations, tmpdir, timeout=150):
    """Runs main.py as the two workers of a TF_CONFIG cluster on 127.0.0.1 (own sessions, killed on timeout);
    returns their CompletedProcess-like (returncode, stdout, stderr, pid) tuples, worker 0 (the chief) first."""
    import time
    cluster = {'worker': [f'127.0.0.1:{p}' for p in _free_ports(2)]}
    procs = []
    for i in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', TMPDIR=str(tmpdir), **_tf_config(cluster, 'worker', i))
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(REPO, 'main.py'), '--datasource=sinusoid', '--norm=None', '--seed=0',
             '--meta_batch_size=4', '--update_batch_size=5', '--num_updates=2', '--update_lr=0.01', '--noxla',
             f'--logdir={logdir}', f'--metatrain_iterations={iterations}', '--distribute=multi_worker'],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True))
    deadline = time.monotonic() + timeout
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=max(deadline - time.monotonic(), 1))
            results.append((p.returncode, out, err, p.pid))
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return results


@pytest.mark.slow
def test_multi_worker_trains_like_one_process_and_resumes(tmp_path):
    """Two worker processes (TF_CONFIG, 127.0.0.1) train 2 meta-iterations, then a second two-worker run resumes
    the chief's checkpoint for 2 more: the weights equal one process's 4 iterations (rtol 1e-5); the logdir holds
    only the chief's files (its lock, its one event file, its checkpoints) and the worker's temporary checkpoint
    directory is gone."""
    import numpy as np
    scratch = tmp_path / 'tmp'
    scratch.mkdir()
    exp = 'cls_5.mbs_4.ubs_5.numstep2.updatelr0.01nonorm'
    one = subprocess.Popen([sys.executable, os.path.join(REPO, 'main.py'), '--datasource=sinusoid', '--norm=None',
                            '--seed=0', '--meta_batch_size=4', '--update_batch_size=5', '--num_updates=2',
                            '--update_lr=0.01', '--noxla', f'--logdir={tmp_path / "one"}', '--metatrain_iterations=4'],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:   # the reference run beside the first two-worker run (they wait for each other at times)
        first = _workers(tmp_path / 'multi', 2, scratch)
        assert one.wait(timeout=120) == 0, one.stderr.read()
    finally:
        if one.poll() is None:
            os.killpg(one.pid, signal.SIGKILL)
            one.wait()
    for rc, out, err, _ in first:
        assert rc == 0, out + err[-3000:]
    chief_pid = first[0][3]
    folder = tmp_path / 'multi' / exp
    assert os.listdir(tmp_path / 'multi') == [exp]
    events = [n for n in os.listdir(folder) if n.startswith('events.')]
    assert len(events) == 1 and f'.{chief_pid}.' in events[0], events
    assert sorted(set(os.listdir(folder)) - set(events)) == sorted(
        ['.train.lock', '.first_iteration.json', 'checkpoint', 'model1.index', 'model1.data-00000-of-00001'])
    assert (folder / '.train.lock').read_text().startswith(f'pid {chief_pid} ')
    assert 'is not the chief: it wrote nothing' in first[1][1]
    assert not [n for n in os.listdir(scratch) if n.startswith('maml-tf2-')]   # the worker's checkpoints

    second = _workers(tmp_path / 'multi', 4, scratch)
    for rc, out, err, _ in second:
        assert rc == 0 and 'Restoring model weights from' in out and 'iterations 2..3 of 4' in out, out + err[-3000:]
    assert len([n for n in os.listdir(folder) if n.startswith('events.')]) == 2   # the chief's two runs
    assert not [n for n in os.listdir(scratch) if n.startswith('maml-tf2-')]   # the worker's checkpoints
    ref = _weights(str(tmp_path / 'one' / exp / 'model3'))
    got = _weights(str(folder / 'model3'))
    assert ref.keys() == got.keys() and ref
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-7, err_msg=k)


# ---------------------------------------------------------------- the learners that split rows or Reptile's tasks
SPLIT_CHILD = textwrap.dedent(r'''
    import json, os, sys
    sys.path.insert(0, REPO)
    import numpy as np
    from infra import distribute
    MULTI = bool(os.environ.get('TF_CONFIG'))   # a worker of a 2-process cluster, else 2 logical CPUs
    if MULTI:   # before anything initialises TensorFlow's context
        distribute.start_multi_worker()
    else:
        distribute.split_cpu(2)
    import tensorflow as tf
    import main
    from config import Config
    cfg = Config(**json.loads(sys.argv[1]))
    N, DIM = cfg.num_classes, (1 if cfg.datasource == 'sinusoid' else 784)
    dg = type('DG', (), {'dim_input': DIM, 'dim_output': N, 'num_train_classes_total': 11})()

    def build(strategy):
        with distribute.scope(strategy):
            m = main.build_learner(cfg, dg)
        return distribute.distribute_learner(m, strategy)
    single = build(None)
    strategy = distribute.make_strategy(cfg.replace(distribute='multi_worker' if MULTI else 'mirrored'))
    assert strategy.num_replicas_in_sync == 2
    dist = build(strategy)
    rng = np.random.RandomState(0)
    B = cfg.meta_batch_size

    def onehot(classes, shape):
        return np.eye(classes)[rng.randint(classes, size=shape)]

    def batch():
        if cfg.method in ('baseline', 'baseline_pp'):
            x = [rng.normal(size=[cfg.batch_size, DIM]), onehot(11, [cfg.batch_size])]
        elif cfg.method == 'reptile':
            rows = N * cfg.update_batch_size
            labels = rng.normal(size=[B, rows, 1]) if cfg.datasource == 'sinusoid' else onehot(N, [B, rows])
            x = [rng.normal(size=[B, rows, DIM]), labels] * 2
        else:   # an episode: every class in the support, queries of any class
            x = [rng.normal(size=[B, N * cfg.update_batch_size, DIM]),
                 np.tile(np.eye(N), [B, cfg.update_batch_size, 1]),
                 rng.normal(size=[B, N * cfg.num_query, DIM]), onehot(N, [B, N * cfg.num_query])]
        return [tf.constant(v, tf.float32) for v in x]

    def step(m):
        return m.pretrain_step_on_batch if cfg.method in ('baseline', 'baseline_pp') else m.metatrain_step

    def state(m):
        items = dict(m.weights)
        items.update({'head/' + k: v for k, v in getattr(m, 'head', {}).items()})
        items.update(getattr(m, 'running', {}))
        return {k: v.numpy() for k, v in items.items()}
    start = state(single)
    for k, v in start.items():
        np.testing.assert_array_equal(v, state(dist)[k], err_msg=k)
    def gradients(m):   # (loss, {name: gradient}, statistics) of the step, None for Reptile
        return getattr(m, 'pretrain_gradients', None) or getattr(m, 'gradients', None)
    # Entries whose true gradient is 0 get rounding noise, which Adam moves by +-meta_lr a step: the biases
    # before batch norm, and any entry where one device's gradient is at noise level (e.g. ProtoNets' last beta
    # of a channel whose max-pooled ReLUs all pass: the distances do not change when a feature shifts).
    # The running means of batch norm add those biases (mean of conv + b): they inherit the biases' noise.
    # (Reptile's inner SGD moves them by the noise itself: checked as the rest.)
    pre_bn = ('b1', 'b2', 'b3', 'b4') if cfg.norm == 'batch_norm' else ()
    noise = {k: np.zeros(v.shape, bool) | (cfg.method != 'reptile' and (k in pre_bn or k.endswith('moving_mean')))
             for k, v in start.items()}
    losses = []
    for i in range(ITERATIONS):
        x = batch()
        if gradients(single) is not None:
            _, g1, _ = tf.function(gradients(single))(*x)
            largest = max(float(np.max(np.abs(g))) for g in g1.values())
            if i == 0:   # the gradient of the split batch is the whole batch's
                _, g2, _ = tf.function(gradients(dist))(*x)
                for k in g1:
                    np.testing.assert_allclose(g2[k], g1[k], rtol=1e-5, atol=1e-5 * largest, err_msg=k)
            for k in g1:
                noise[k] |= np.abs(g1[k].numpy()) <= 1e-5 * largest
        losses.append((float(step(single)(*x)), float(step(dist)(*x))))
    np.testing.assert_allclose(*zip(*losses), rtol=1e-5)
    one, two = state(single), state(dist)
    travel = 0.0 if cfg.method == 'reptile' else ITERATIONS * cfg.meta_lr   # Adam moves a weight <= meta_lr a step
    for k, v in one.items():
        assert np.max(np.abs(v - start[k])) > 0 or k in pre_bn, k   # it trained
        assert np.all(np.abs(v - two[k])[noise[k]] <= 2 * travel), k
        # atol: 1e-6 of the largest entry, or 1e-5 of Adam's travel: weights that start at 0 (beta) sit within a
        # few steps of it, where the steps' rounding shows; Reptile's pre-batch-norm biases (its SGD moves them by
        # their noise-level gradient, ~1e-10): 1e-6 of the largest kernel entry
        floor = 1e-6 * max(np.max(np.abs(one[c])) for c in ('conv1', 'conv2')) if k in pre_bn else 0.0
        np.testing.assert_allclose(two[k][~noise[k]], v[~noise[k]], rtol=1e-5,
                                   atol=max(1e-6 * np.max(np.abs(v)), 1e-5 * travel, floor), err_msg=k)
    print('PARITY OK', losses, {k: int(n.sum()) for k, n in noise.items() if n.any()})
''')


def _run_split_child(config, iterations=3, workers=0, timeout=900):
    """Runs SPLIT_CHILD: on 2 logical CPUs (workers=0), or as each of `workers` processes of a TF_CONFIG
    cluster on 127.0.0.1 (each compares its replicated learner with one device's in the same process)."""
    import time
    code = SPLIT_CHILD.replace('REPO', repr(REPO)).replace('ITERATIONS', str(iterations))
    cluster = {'worker': [f'127.0.0.1:{p}' for p in _free_ports(workers)]}
    envs = [dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', **(_tf_config(cluster, 'worker', i) if workers else {}))
            for i in range(max(workers, 1))]
    if not workers:
        envs[0].pop('TF_CONFIG', None)
    procs = [subprocess.Popen([sys.executable, '-c', code, json.dumps(config)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, start_new_session=True) for env in envs]
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            out, err = p.communicate(timeout=max(deadline - time.monotonic(), 1))
            assert p.returncode == 0 and 'PARITY OK' in out, out + err[-4000:]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


METRIC = dict(datasource='omniglot', norm='batch_norm', num_filters=4, num_classes=3, update_batch_size=1,
              num_query=3, meta_batch_size=1, seed=0)


@pytest.mark.slow   # 100 s at load 4-16 on the 2-core VM (tracing the replicated step)
@pytest.mark.parametrize('method', ['protonet', 'matchingnet'])
def test_mirrored_splits_query_rows(method):
    """ProtoNets / Matching Nets, 3-way 1-shot, 9 query rows split 4 / 5 over 2 replicas, support on both, batch
    norm over the whole episode: the losses, weights and running statistics after 3 Adam updates equal one
    device's (rtol 1e-5)."""
    _run_split_child(dict(METRIC, method=method))


@pytest.mark.slow
@pytest.mark.parametrize('method', ['baseline', 'baseline_pp'])
def test_mirrored_splits_pretraining_rows(method):
    """The baselines' pre-training, 7 rows split 3 / 4 over 2 replicas, batch norm over the whole mini-batch:
    the losses, body, head and running statistics after 3 Adam updates equal one device's (rtol 1e-5)."""
    _run_split_child(dict(datasource='omniglot', norm='batch_norm', num_filters=4, num_classes=3, batch_size=7,
                          seed=0, method=method))


@pytest.mark.slow
@pytest.mark.parametrize('extra', [dict(datasource='sinusoid', norm='None', num_classes=1, update_batch_size=6),
                                   dict(datasource='omniglot', norm='batch_norm', num_filters=4, num_classes=3,
                                        update_batch_size=2)])
def test_mirrored_splits_reptile_tasks(extra):
    """Reptile with --inner_sgd, 4 tasks split 2 / 2, 3 inner steps of 2-row mini-batches each (MAML's network;
    batch norm per mini-batch): the weights after 3 meta-iterations equal one device's (rtol 1e-5)."""
    _run_split_child(dict(extra, method='reptile', inner_sgd=True, meta_batch_size=4, inner_iters=3, inner_batch=2,
                          update_lr=0.01, seed=0, metatrain_iterations=10))


@pytest.mark.slow
@pytest.mark.parametrize('method,extra', [
    ('protonet', METRIC), ('matchingnet', dict(METRIC, meta_batch_size=2)),
    ('baseline', dict(datasource='omniglot', norm='batch_norm', num_filters=4, num_classes=3, batch_size=7, seed=0)),
    ('baseline_pp', dict(datasource='omniglot', norm='batch_norm', num_filters=4, num_classes=3, batch_size=6,
                         seed=0)),
    ('reptile', dict(datasource='omniglot', norm='batch_norm', num_filters=4, num_classes=3, update_batch_size=2,
                     inner_sgd=True, meta_batch_size=4, inner_iters=3, inner_batch=2, update_lr=0.01, seed=0,
                     metatrain_iterations=10)),
])
def test_multi_worker_splits_like_one_process(method, extra):
    """Two worker processes (TF_CONFIG on 127.0.0.1, MultiWorkerMirroredStrategy): each trains the replicated
    learner and one device's beside it on the same batches; the gradient, losses, weights and running statistics
    after 3 updates agree (rtol 1e-5), the batch-norm statistics and the gradients all-reduced between the
    processes."""
    _run_split_child(dict(extra, method=method), workers=2)
