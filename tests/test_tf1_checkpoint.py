"""TF1 checkpoints: the authors' MiniImagenet file loads exactly, a TF1 Saver file of a golden's
initial variables reproduces its losses, export -> reload is exact and readable by a TF1 Saver,
bad checkpoints fail with one line, and main.py tests / trains from a TF1 checkpoint."""
import csv
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import main
import config as config_lib
from infra import batches
from infra import tf1_checkpoint
from config import Config
from conftest import GOLDEN_DIR, REPO, SHARED, _require
from maml import MAML

sys.path.insert(0, os.path.join(REPO, 'scripts'))
import golden_check  # noqa: E402

AUTHORS = os.path.join(SHARED, 'data', 'tf1_checkpoints', 'miniimagenet1shot', 'model59000')
# the authors' 5-way 1-shot MiniImagenet flags (README of cbfinn/maml), as for testing it
MINI = Config(datasource='miniimagenet', num_classes=5, meta_batch_size=4, update_batch_size=1, num_updates=5,
              update_lr=0.01, num_filters=32, max_pool=True, norm='batch_norm', train=False, xla=False, seed=0)
MINI_DIM = 84 * 84 * 3
ADAM_AND_STATISTICS = ['beta1_power', 'beta2_power', 'model/0/moving_mean', 'model/0/moving_variance',
                       'model/conv1/Adam', 'model/conv1/Adam_1']


@pytest.fixture(scope='module')
def authors():
    return _require(AUTHORS + '.index')[:-len('.index')]


def _mini(**changes):
    config = MINI.replace(**changes)
    return MAML(MINI_DIM, config.num_classes, 10, config)


def _values(model):
    return {k: v.numpy().copy() for k, v in model.meta_variables.items()}


def saver_write(prefix, values):
    """Writes {TF1 name: array} with a real compat.v1 graph + tf.compat.v1.train.Saver, as the
    original's `saver.save(sess, prefix)` did (independent of tf1_checkpoint.export)."""
    with tf.Graph().as_default():
        variables = [tf.compat.v1.Variable(v, name=n) for n, v in values.items()]
        assert [v.op.name for v in variables] == list(values)
        saver = tf.compat.v1.train.Saver(variables, max_to_keep=10)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            return saver.save(sess, prefix)


def saver_read(directory, shapes):
    """{TF1 name: array} restored by a compat.v1 Saver from the latest checkpoint of `directory`
    into fresh graph variables with the original names and `shapes` ({name: shape})."""
    with tf.Graph().as_default():
        variables = [tf.compat.v1.Variable(tf.zeros(s), name=n) for n, s in shapes.items()]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as sess:
            saver.restore(sess, tf.train.latest_checkpoint(directory))
            return dict(zip(shapes, sess.run(variables)))


# ---------------------------------------------------------------------------- (1) the authors' checkpoint
def test_authors_checkpoint_loads_exactly(authors):
    model = _mini()
    assert tf1_checkpoint.load(model, authors) == []       # nothing in it the model does not use
    reader = tf.train.load_checkpoint(authors)
    names = model.tf1_names()
    assert sorted(names.values()) == sorted(reader.get_variable_to_shape_map())   # every variable of the file
    assert len(names) == 14
    for key, name in names.items():
        got = model.meta_variables[key].numpy()
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, reader.get_tensor(name), err_msg=name)   # bit for bit


@pytest.mark.parametrize('changes,message', [
    (dict(num_filters=64), 'variable model/conv1 has shape [3, 3, 3, 32] in checkpoint {p} but [3, 3, 3, 64] in '
                           'the model; pass --num_filters=32 (the flags must be those it was trained with)'),
    (dict(num_classes=20), 'variable model/w5 has shape [800, 5] in checkpoint {p} but [800, 20] in the model; '
                           'pass --num_classes=5 (the flags must be those it was trained with)'),
    (dict(datasource='omniglot'), 'variable model/conv1 has shape [3, 3, 3, 32] in checkpoint {p} but [3, 3, 1, 32] '
                                  'in the model; its images have 3 channels: pass --datasource=miniimagenet'),
    (dict(norm='layer_norm'), "checkpoint {p} has no variable model/0/gamma (the model's '0/gamma'); it was trained "
                              'with batch norm (beta, no gamma): pass --norm=batch_norm'),
    (dict(norm='None'), 'checkpoint {p} has variable model/0/beta [32], which the model does not have; it was '
                        'trained with normalisation: pass --norm=batch_norm or --norm=layer_norm'),
])
def test_authors_checkpoint_with_other_flags_names_variable_shapes_and_flag(authors, changes, message):
    config = MINI.replace(**changes)
    dim = 28 * 28 if config.datasource == 'omniglot' else MINI_DIM
    model = MAML(dim, config.num_classes, 10, config)
    before = _values(model)
    with pytest.raises(tf1_checkpoint.Error) as e:
        tf1_checkpoint.load(model, authors)
    assert message.format(p=authors) in str(e.value)
    for k, v in _values(model).items():
        np.testing.assert_array_equal(v, before[k])        # nothing assigned


# ---------------------------------------------------------------------------- (2) golden losses
@pytest.mark.parametrize('case', ['sine_K10', 'omni_5w1s_bn',
                                  pytest.param('mini_5w1s_maxpool', marks=pytest.mark.slow)])   # 84x84 images: the costliest
def test_tf1_saver_file_of_a_golden_reproduces_its_losses(case, tmp_path):
    path = os.path.join(_require(GOLDEN_DIR), case + '.npz')
    d, cfg, wmap = golden_check.load(path)
    initial = {k[len('var/'):]: d[k] for k in d if k.startswith('var/')}
    prefix = saver_write(str(tmp_path / 'model0'), initial)

    model = golden_check.build(cfg, xla=False)              # seed 0: other initial values
    assert not np.array_equal(model.weights['w1' if 'w1' in wmap else 'conv1'].numpy(),
                              initial[wmap['w1' if 'w1' in wmap else 'conv1']])
    assert tf1_checkpoint.resolve(str(tmp_path)) == prefix               # the Saver's `checkpoint` file
    assert tf1_checkpoint.load(model, prefix) == []
    for key, name in model.tf1_names().items():
        np.testing.assert_array_equal(model.meta_variables[key].numpy(), initial[name], err_msg=name)

    steps = cfg['n_inner_steps_in_graph']
    batch = [tf.constant(d[k]) for k in ('inputa', 'labela', 'inputb', 'labelb')]
    out = model.metalearn(*batch, steps)
    ours = {'total_loss1': out.total_loss1, 'total_losses2': out.total_losses2, 'lossesa': out.lossesa,
            'lossesb': out.lossesb, 'outputas': out.outputas, 'outputbs': out.outputbs}
    if model.classification:
        ours.update(total_accuracy1=out.total_accuracy1, total_accuracies2=out.total_accuracies2)
    rows = golden_check.compare(path, {k: np.asarray(v) for k, v in ours.items()})
    assert len(rows) == 3 + 3 * steps + (2 if model.classification else 0)   # every array, every step
    assert [f'{k}: {e:.3g} > {t:.3g}' for k, e, t, ok in rows if not ok] == []


# ---------------------------------------------------------------------------- (3) export, extras, paths
@pytest.mark.parametrize('kind', ['mini', 'sine'])
def test_export_reload_is_exact_and_a_tf1_saver_reads_it(kind, tmp_path):
    if kind == 'mini':
        model, other = _mini(seed=1), _mini(seed=2)
    else:
        config = Config(datasource='sinusoid', norm='None', seed=1, xla=False)
        model, other = MAML(1, 1, 5, config), MAML(1, 1, 5, config.replace(seed=2))
    directory = tmp_path / 'tf1'
    assert tf1_checkpoint.export(model, str(directory / 'model7')) == str(directory / 'model7')
    assert sorted(os.listdir(directory)) == ['checkpoint', 'model7.data-00000-of-00001', 'model7.index']
    assert tf.train.latest_checkpoint(str(directory)) == str(directory / 'model7')

    names = model.tf1_names()
    listed = dict(tf.train.list_variables(str(directory / 'model7')))
    assert listed == {n: model.meta_variables[k].shape.as_list() for k, n in names.items()}   # names, nothing else
    restored = saver_read(str(directory), listed)
    for key, name in names.items():
        np.testing.assert_array_equal(restored[name], model.meta_variables[key].numpy(), err_msg=name)

    assert tf1_checkpoint.load(other, tf1_checkpoint.resolve(str(directory))) == []
    for key, value in _values(model).items():
        np.testing.assert_array_equal(other.meta_variables[key].numpy(), value, err_msg=key)


def test_export_adds_to_the_state_file_as_a_saver(tmp_path):
    model = MAML(1, 1, 5, Config(datasource='sinusoid', norm='None', seed=0))
    tf1_checkpoint.export(model, str(tmp_path / 'model1'))
    tf1_checkpoint.export(model, str(tmp_path / 'model2'))
    tf1_checkpoint.export(model, str(tmp_path / 'model1'))
    with open(tmp_path / 'checkpoint') as f:
        assert f.read() == ('model_checkpoint_path: "model1"\nall_model_checkpoint_paths: "model2"\n'
                            'all_model_checkpoint_paths: "model1"\n')
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert list(state.all_model_checkpoint_paths) == [str(tmp_path / 'model2'), str(tmp_path / 'model1')]
    assert not [n for n in os.listdir(tmp_path) if n.startswith('.tmp')]


def test_optimizer_state_and_moving_statistics_are_ignored_other_extras_are_errors(tmp_path):
    d, cfg, _ = golden_check.load(os.path.join(_require(GOLDEN_DIR), 'omni_5w1s_bn.npz'))
    initial = {k[len('var/'):]: d[k] for k in d if k.startswith('var/')}
    extras = {'model/conv1/Adam': np.ones([3, 3, 1, 64], np.float32), 'model/conv1/Adam_1': np.ones([3, 3, 1, 64],
              np.float32), 'beta1_power': np.float32(0.9), 'beta2_power': np.float32(0.999),
              'model/0/moving_mean': np.zeros(64, np.float32), 'model/0/moving_variance': np.ones(64, np.float32)}
    prefix = saver_write(str(tmp_path / 'a' / 'model3'), {**initial, **extras})
    model = golden_check.build(cfg, xla=False)
    assert tf1_checkpoint.load(model, prefix) == ADAM_AND_STATISTICS
    np.testing.assert_array_equal(model.weights['w5'].numpy(), initial['model/w5'])

    prefix = saver_write(str(tmp_path / 'b' / 'model3'), {**initial, 'model/Variable_9': np.zeros(5, np.float32)})
    with pytest.raises(tf1_checkpoint.Error, match=r'has variable model/Variable_9 \[5\], which the model does '
                                                   r'not have; the checkpoint is of another network'):
        tf1_checkpoint.load(model, prefix)


def test_a_tf2_checkpoint_is_not_a_tf1_checkpoint(tmp_path):
    model = MAML(1, 1, 5, Config(datasource='sinusoid', norm='None', seed=0))
    prefix = tf.train.Checkpoint(weights=model.weights).write(str(tmp_path / 'model5'))
    with pytest.raises(tf1_checkpoint.Error, match='it is a TF2 object-based checkpoint .maml-tf2 writes those.: '
                                                   'load it with --logdir and --test_iter instead of --tf1_checkpoint'):
        tf1_checkpoint.load(model, prefix)
    (tmp_path / 'bad.index').write_bytes(b'not a checkpoint')
    with pytest.raises(tf1_checkpoint.Error, match='^cannot read checkpoint .*bad .*; pass an intact TF1 checkpoint$'):
        tf1_checkpoint.load(model, str(tmp_path / 'bad'))


def test_resolve_prefix_file_directory_and_state_file_from_elsewhere(tmp_path):
    for n in (900, 59000):
        for suffix in ('.index', '.data-00000-of-00001'):
            (tmp_path / f'model{n}{suffix}').write_bytes(b'')
    p = str(tmp_path / 'model900')
    assert tf1_checkpoint.resolve(p) == p
    assert tf1_checkpoint.resolve(p + '.index') == p
    assert tf1_checkpoint.resolve(p + '.data-00000-of-00001') == p
    with pytest.raises(tf1_checkpoint.Error) as e:
        tf1_checkpoint.resolve(str(tmp_path))
    assert str(e.value) == (f'{tmp_path} is a directory without a TF1 `checkpoint` file; pass a checkpoint prefix '
                            f'such as {tmp_path / "model59000"}')
    # the original wrote the path it was given (relative to its working directory, or absolute)
    (tmp_path / 'checkpoint').write_text('model_checkpoint_path: "/home/cfinn/logs/mini/model900"\n'
                                         'all_model_checkpoint_paths: "/home/cfinn/logs/mini/model900"\n')
    assert tf1_checkpoint.resolve(str(tmp_path)) == p
    (tmp_path / 'checkpoint').write_text('model_checkpoint_path: "model5"\n')
    with pytest.raises(tf1_checkpoint.Error, match='the latest checkpoint named in .*checkpoint does not exist; '
                                                   'pass a checkpoint prefix such as .*model59000$'):
        tf1_checkpoint.resolve(str(tmp_path))
    with pytest.raises(tf1_checkpoint.Error) as e:
        tf1_checkpoint.resolve(str(tmp_path / 'nope' / 'model1'))
    assert str(e.value) == (f'no TF1 checkpoint: neither {tmp_path}/nope/model1.index nor a directory '
                            f'{tmp_path}/nope/model1 exists; pass the prefix of a TF1 checkpoint (e.g. DIR/model59000, '
                            f'without .index) or its directory')
    assert tf1_checkpoint.iterations_done('x/model59000') == 59001
    assert tf1_checkpoint.iterations_done('x/weights') == 0


# ---------------------------------------------------------------------------- (4) flags, errors through main.py
def test_flags_become_config_fields():
    fv = flags.FlagValues()
    main.define_flags(fv)
    fv(['main.py', '--tf1_checkpoint=ckpt/model59000', '--export_tf1=out/model1'])
    c = main.config_from_flags(fv)
    assert (c.tf1_checkpoint, c.export_tf1) == ('ckpt/model59000', 'out/model1')
    assert (Config().tf1_checkpoint, Config().export_tf1) == ('', '')


def _main(*args, cwd):
    return subprocess.run([sys.executable, os.path.join(REPO, 'main.py'), *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'})


def _sine_golden_checkpoint(tmp_path):
    d = np.load(os.path.join(_require(GOLDEN_DIR), 'sine_K10.npz'))
    return saver_write(str(tmp_path / 'tf1' / 'model99'), {k[4:]: d[k] for k in d if k.startswith('var/')})


def test_main_missing_checkpoint_is_one_line_exit_2_nothing_written(tmp_path):
    proc = _main('--train=False', '--tf1_checkpoint=tf1/model5', '--logdir=logs', '--export_tf1=out/model5',
                 cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == ('main.py: error: --tf1_checkpoint=tf1/model5: no TF1 checkpoint: neither tf1/model5.index '
                           'nor a directory tf1/model5 exists; pass the prefix of a TF1 checkpoint '
                           '(e.g. DIR/model59000, without .index) or its directory\n')
    assert proc.stdout == '' and os.listdir(tmp_path) == []


def test_main_shape_mismatch_is_one_line_exit_2_nothing_written(tmp_path):
    prefix = _sine_golden_checkpoint(tmp_path)
    proc = _main('--datasource=sinusoid', '--norm=None', '--baseline=oracle', '--train=False', '--logdir=logs',
                 '--tf1_checkpoint=tf1', '--export_tf1=out/model1', '--xla=False', cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.endswith(
        f'main.py: error: --tf1_checkpoint=tf1: variable model/Variable has shape [1, 40] in checkpoint {prefix} '
        'but [3, 40] in the model; it was trained without the oracle baseline: drop --baseline=oracle (the flags '
        'must be those it was trained with)\n')
    assert proc.stderr.count('main.py: error:') == 1
    assert proc.stdout == ''
    assert sorted(os.listdir(tmp_path)) == ['tf1']
    assert sorted(os.listdir(tmp_path / 'tf1')) == ['checkpoint', 'model99.data-00000-of-00001', 'model99.index',
                                                    'model99.meta']


def _sine(tmp_path, name='logs', **changes):
    base = dict(datasource='sinusoid', metatrain_iterations=20, meta_batch_size=4, update_batch_size=10,
                update_lr=0.01, norm='None', seed=0, xla=False, log=False, logdir=str(tmp_path / name))
    return Config(**{**base, **changes})


def test_conflicting_and_unusable_paths_fail_before_anything_is_written(tmp_path):
    prefix = _sine_golden_checkpoint(tmp_path)
    config = _sine(tmp_path, tf1_checkpoint=prefix)
    cases = [
        (config.replace(train=False, test_iter=5), '--test_iter=5 picks a maml-tf2 checkpoint, --tf1_checkpoint '
                                                   'another one; drop one of the two flags'),
        (config.replace(export_tf1=str(tmp_path)), f'--export_tf1={tmp_path} is a directory; give a checkpoint '
                                                   f'prefix such as {tmp_path}/model<itr>'),
        (config.replace(export_tf1=os.path.join(config.logdir, config_lib.exp_string(config), 'model1')),
         'is in the experiment directory'),
    ]
    for bad, message in cases:
        with pytest.raises(main.UsageError, match=message.replace('[', r'\[').replace('.', r'\.')):
            main.prepare(bad)
    assert sorted(os.listdir(tmp_path)) == ['tf1']
    # a maml-tf2 checkpoint in the experiment would be resumed too
    exp_dir = os.path.join(config.logdir, config_lib.exp_string(config))
    os.makedirs(exp_dir)
    with open(os.path.join(exp_dir, 'checkpoint'), 'w') as f:
        f.write('model_checkpoint_path: "model3"\n')
    open(os.path.join(exp_dir, 'model3.index'), 'w').close()
    with pytest.raises(main.UsageError, match='--tf1_checkpoint and --resume=True, but .* already has .*model3; '
                                              'pass --resume=False to start from the TF1 checkpoint, or drop '
                                              '--tf1_checkpoint to resume'):
        main.prepare(config)
    assert main.prepare(config.replace(resume=False)).start_itr == 100


# ---------------------------------------------------------------------------- (5) main.py end to end
def _csv(path):
    with open(path, newline='') as f:
        return list(csv.reader(f))


def test_main_tests_a_tf1_checkpoint_and_continues_training_from_it(tmp_path, capsys):
    """Train 20 iterations and export; `main.py --train=False --tf1_checkpoint=DIR` (a fresh process)
    writes the test CSV and pkl of exactly the trained weights; training from it continues at 20."""
    config = _sine(tmp_path, export_tf1=str(tmp_path / 'tf1' / 'model19'))
    main.run(config, intervals=main.Intervals(summary=10, save=100, print=100, test_print=100))
    assert capsys.readouterr().out.splitlines()[-1] == '[maml-tf2] wrote TF1 checkpoint ' + config.export_tf1

    proc = _main('--datasource=sinusoid', '--meta_batch_size=4', '--update_batch_size=10', '--update_lr=0.01',
                 '--norm=None', '--train=False', '--logdir=from_tf1', '--tf1_checkpoint=tf1', '--xla=False',
                 cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    original = [line for line in proc.stdout.splitlines() if not line.startswith('[maml-tf2]')]
    assert original[:2] == ['Restoring model weights from tf1/model19',
                            'Mean validation accuracy/loss, stddev, and confidence intervals']
    assert proc.stdout.splitlines()[-1].startswith('[maml-tf2] wrote from_tf1/cls_5.mbs_4.ubs_10.numstep1.updatelr0.01'
                                                   'nonorm/results/val_tf1_model19_ubs10_stepsize0.01.{csv,pkl,json}')
    prefix = tmp_path / 'from_tf1' / 'cls_5.mbs_4.ubs_10.numstep1.updatelr0.01nonorm' / 'test_ubs10_stepsize0.01'
    with open(str(prefix) + '.pkl', 'rb') as f:
        rows = pickle.load(f)['mses']
    table = _csv(str(prefix) + '.csv')
    assert rows.shape == (600, 11) and len(table) == 4 and table[0] == ['update' + str(i) for i in range(11)]
    np.testing.assert_allclose(np.array(table[1], np.float64), rows.mean(0), rtol=1e-6)
    # the first test tasks (the original's np.random.seed(1) stream) with the trained weights, in-process
    native = main.prepare(config.replace(train=False, export_tf1=''))
    trained = _values(native.model)
    native.data_generator.rng = np.random.RandomState(main.TEST_SEED)
    stream = batches.stream(native, train=False)
    for i in range(5):
        out = native.model.evaluate(*next(stream))
        np.testing.assert_array_equal(rows[i], [out.total_loss1.numpy(), *out.total_losses2.numpy()])

    # --train=True: the TF1 weights, a fresh Adam, iterations from the name (model19: 20 done)
    cont = _sine(tmp_path, 'cont', metatrain_iterations=23, tf1_checkpoint=str(tmp_path / 'tf1' / 'model19'))
    e = main.prepare(cont)
    assert e.start_itr == 20
    for k, v in _values(e.model).items():
        np.testing.assert_array_equal(v, trained[k])
    assert e.model.metatrain_optimizer.beta1_power.numpy() == np.float32(0.9)
    capsys.readouterr()
    assert main.train(e) == 23
    assert capsys.readouterr().out.splitlines()[0] == 'Done initializing, starting training.'
    assert e.model.metatrain_optimizer.beta1_power.numpy() == pytest.approx(0.9 ** 4)
    assert main.latest_checkpoint(e.exp_dir) == os.path.join(e.exp_dir, 'model22')
