"""main.py: the original's flags and experiment names, train()/test() end to end, summaries, bad input."""
import csv
import glob
import json
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

import main
from infra import results
from infra import actions
from infra import batches
from infra import quiet
from infra import checks
from config import Config, exp_string
from conftest import REPO

# The original main.py's flags: name -> (type, default, help), copied from cbfinn/maml.
ORIGINAL_FLAGS = {
    'datasource': ('string', 'sinusoid', 'sinusoid or omniglot or miniimagenet'),
    'num_classes': ('int', 5, 'number of classes used in classification (e.g. 5-way classification).'),
    'baseline': ('string', None, 'oracle, or None'),
    'pretrain_iterations': ('int', 0, 'number of pre-training iterations.'),
    'metatrain_iterations': ('int', 15000, 'number of metatraining iterations.'),
    'meta_batch_size': ('int', 25, 'number of tasks sampled per meta-update'),
    'meta_lr': ('float', 0.001, 'the base learning rate of the generator'),
    'update_batch_size': ('int', 5, 'number of examples used for inner gradient update (K for K-shot learning).'),
    'update_lr': ('float', 1e-3, 'step size alpha for inner gradient update.'),
    'num_updates': ('int', 1, 'number of inner gradient updates during training.'),
    'norm': ('string', 'batch_norm', 'batch_norm, layer_norm, or None'),
    'num_filters': ('int', 64, 'number of filters for conv nets -- 32 for miniimagenet, 64 for omiglot.'),
    'conv': ('bool', True, 'whether or not to use a convolutional network, only applicable in some cases'),
    'max_pool': ('bool', False, 'Whether or not to use max pooling rather than strided convolutions'),
    'stop_grad': ('bool', False, 'if True, do not use second derivatives in meta-optimization (for speed)'),
    'log': ('bool', True, 'if false, do not log summaries, for debugging code.'),
    'logdir': ('string', '/tmp/data', 'directory for summaries and checkpoints.'),
    'resume': ('bool', True, 'resume training if there is a model available'),
    'train': ('bool', True, 'True to train, False to test.'),
    'test_iter': ('int', -1, 'iteration to load model (-1 for latest model)'),
    'test_set': ('bool', False, 'Set to true to test on the the test set, False for the validation set.'),
    'train_update_batch_size': ('int', -1, 'number of examples used for gradient update during training '
                                           '(use if you want to test with a different number).'),
    'train_update_lr': ('float', -1.0, 'value of inner gradient step step during training. '
                                       '(use if you want to test with a different value)'),
}
NEW_FLAGS = {'xla': ('bool', True), 'seed': ('int', -1), 'data_dir': ('string', ''), 'num_query': ('int', -1),
             'num_train_classes': ('int', -1), 'num_val_classes': ('int', -1),
             'tf1_checkpoint': ('string', ''), 'export_tf1': ('string', ''), 'verbose': ('bool', False)}
ABSL_TYPE = {'string': 'string', 'int': 'int', 'float': 'float', 'bool': 'bool'}

FAST = main.Intervals(summary=10, save=20, print=20, test_print=100)


def _parse(*args):
    fv = flags.FlagValues()
    main.define_flags(fv)
    fv(['main.py', *args])
    return main.config_from_flags(fv)


def _sine(tmp_path, **changes):
    """A small sinusoid config writing under tmp_path."""
    base = dict(datasource='sinusoid', metatrain_iterations=30, meta_batch_size=4, update_batch_size=5,
                update_lr=0.01, norm='None', seed=0, xla=False, logdir=str(tmp_path / 'logs'))
    return Config(**{**base, **changes})


# ---------------------------------------------------------------------------- flags and names
@pytest.mark.parametrize('name', sorted(ORIGINAL_FLAGS))
def test_original_flag_has_its_type_default_and_help(name):
    kind, default, help_text = ORIGINAL_FLAGS[name]
    flag = main.FLAGS[name]
    assert flag.flag_type() == ABSL_TYPE[kind]
    assert flag.default == default and type(flag.default) is type(default)
    assert flag.help == help_text


def test_new_flags_exist_with_their_defaults():
    for name, (kind, default) in NEW_FLAGS.items():
        assert main.FLAGS[name].flag_type() == ABSL_TYPE[kind]
        assert main.FLAGS[name].default == default


def test_flag_defaults_are_the_config_defaults():
    assert _parse() == Config()


def test_flags_become_a_config():
    c = _parse('--datasource=omniglot', '--num_classes=20', '--update_lr=0.1', '--max_pool', '--train=False',
               '--baseline=None', '--seed=3')
    assert (c.datasource, c.num_classes, c.update_lr, c.max_pool, c.train, c.baseline, c.seed) == \
        ('omniglot', 20, 0.1, True, False, None, 3)
    assert _parse('--baseline=oracle').baseline == 'oracle'


@pytest.mark.parametrize('args,expected', [
    ((), 'cls_5.mbs_25.ubs_5.numstep1.updatelr0.001batchnorm'),
    (('--norm=None', '--update_batch_size=10', '--update_lr=0.01'), 'cls_5.mbs_25.ubs_10.numstep1.updatelr0.01nonorm'),
    (('--norm=None', '--update_batch_size=10', '--baseline=oracle'), 'cls_5.mbs_25.ubs_10.numstep1.updatelr0.001oraclenonorm'),
    (('--datasource=omniglot', '--meta_batch_size=32', '--update_batch_size=1', '--update_lr=0.4'),
     'cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm'),
    (('--datasource=miniimagenet', '--meta_batch_size=4', '--update_batch_size=1', '--update_lr=0.01',
      '--num_updates=5', '--num_filters=32', '--max_pool=True'), 'cls_5.mbs_4.ubs_1.numstep5.updatelr0.01hidden32maxpoolbatchnorm'),
    (('--stop_grad', '--norm=layer_norm', '--train=False', '--update_batch_size=3', '--train_update_batch_size=1',
      '--train_update_lr=0.4'), 'cls_5.mbs_25.ubs_1.numstep1.updatelr0.4stopgradlayernorm'),
])
def test_exp_string_as_the_original(args, expected):
    assert exp_string(_parse(*args)) == expected


def test_run_config_derives_the_originals_values():
    c = _parse('--baseline=oracle', '--pretrain_iterations=5', '--metatrain_iterations=70', '--train=False')
    rc = main.run_config(c)
    assert (rc.pretrain_iterations, rc.metatrain_iterations, rc.meta_batch_size) == (75, 0, 1)
    assert exp_string(c) == exp_string(c.replace(train=True))   # named with the training meta batch
    assert c.meta_batch_size == 25                              # the given config is untouched


# ---------------------------------------------------------------------------- end to end, in-process
def _csv(path):
    with open(path, newline='') as f:
        return list(csv.reader(f))


def test_summaries_evaluate_the_weights_before_the_step_and_keep_the_steps_weights(tmp_path):
    """The summaries copy the weights at `begin` and evaluate the copy on a twin of the learner, in the background
    for the first time: their values are `evaluate` before the step to the bit (the original fetched them with the
    update), and the step's weights stay."""
    e = main.prepare(_sine(tmp_path, norm='batch_norm'))
    batch = next(batches.stream(e, train=True))
    expected = e.model.evaluate(*actions.summary_tasks(e.model, batch))
    summaries = actions.Summaries(e, 10, None, None)
    summaries.begin(0, batch)
    before = [v.numpy() for v in actions.learner_variables(e.model)]
    e.model.metatrain_step(*batch)
    stepped = [v.numpy() for v in actions.learner_variables(e.model)]
    assert any(not np.array_equal(a, b) for a, b in zip(before, stepped))
    summaries.end(0, None)
    assert summaries.pending is not None and summaries.take_means() is None   # still running
    summaries.settle()
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(stepped, actions.learner_variables(e.model)))
    post_loss, _ = actions.post_update(expected, e.run_config.num_updates)
    assert summaries.take_means() == (expected.total_loss1.numpy(), post_loss.numpy())


def test_an_error_in_the_background_evaluation_reaches_the_training(tmp_path):
    e = main.prepare(_sine(tmp_path))
    batch = next(batches.stream(e, train=True))
    summaries = actions.Summaries(e, 10, None, None)
    summaries.begin(0, batch)
    summaries.evaluator.twin.evaluate = lambda *tasks: 1 / 0
    summaries.end(0, None)
    with pytest.raises(ZeroDivisionError):
        summaries.close(0)


def test_sinusoid_train_then_test_as_the_original(tmp_path, capsys):
    config = _sine(tmp_path)
    done = main.train(main.prepare(config), FAST)
    assert done == 30
    out = capsys.readouterr().out.splitlines()
    exp_dir = tmp_path / 'logs' / 'cls_5.mbs_4.ubs_5.numstep1.updatelr0.01nonorm'
    assert out[0] == 'Done initializing, starting training.'
    assert out[1] == '[maml-tf2] iteration 0: tracing the meta-training step ...'   # nothing recorded yet
    assert out[2].startswith('[maml-tf2] first meta-training iteration (0): ') and out[2].endswith(
        's (tracing); s/it and ETA count the steps after it')
    # the summaries of iteration 0 (on the weights before its step) are evaluated after its line, in the background:
    # the first iteration traces the step alone, and the values are recorded at the next summaries (10)
    assert out[3] == ('[maml-tf2] tracing the evaluation of the training summaries in the background; the training '
                      "goes on and iteration 0's summaries are written at the next ones (10)")
    assert re.fullmatch(r"\[maml-tf2\] the training summaries' evaluation was traced in the background in "
                        r'[0-9.]+s; the training waited [0-9.]+s for it', out[4])
    assert out[5].startswith('Iteration 20: ') and len(out[5].split(': ')[1].split(', ')) == 2
    assert out[6].startswith('[maml-tf2] it 20/30  ') and ' s/it  ETA ' in out[6]
    assert out[7].startswith('[maml-tf2] trained iterations 0..29 of 30 in ')
    assert out[8] == (f'[maml-tf2] checkpoint {exp_dir}/model29 (kept: model20, model29; list in {exp_dir}/checkpoint)'
                      f'; TensorBoard summaries in {exp_dir}')
    assert out[9].startswith('[maml-tf2] last training summaries: pre-update loss ')
    assert len(out) == 11
    assert sorted(os.listdir(exp_dir)) == sorted(
        ['.train.lock', '.first_iteration.json', 'checkpoint', 'model20.index', 'model20.data-00000-of-00001',
         'model29.index', 'model29.data-00000-of-00001'] +
        [os.path.basename(p) for p in glob.glob(str(exp_dir / 'events.*'))])
    first_s = float(out[2].split('): ')[1].split('s (')[0])
    with open(exp_dir / '.first_iteration.json') as f:
        assert json.load(f) == {'meta-training:graph': pytest.approx(first_s, abs=0.051)}

    rows = main.test(main.prepare(config.replace(train=False)))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == 'Restoring model weights from ' + str(exp_dir / 'model29')
    assert out[1] == (f'[maml-tf2] testing {exp_dir}/model29 on 600 validation tasks (meta batch 1, 10 inner steps '
                      f'where the method has them)')
    assert out[2].startswith('[maml-tf2] first task ')
    original = [line for line in out if not line.startswith('[maml-tf2]')][1:]
    assert original[0] == 'Mean validation accuracy/loss, stddev, and confidence intervals'
    assert original[1].startswith('(array([')
    table = _csv(exp_dir / 'test_ubs5_stepsize0.01.csv')
    assert len(table) == 4 and table[0] == ['update' + str(i) for i in range(11)]
    values = np.array(table[1:], dtype=np.float64)
    assert values.shape == (3, 11) and np.all(np.isfinite(values))
    with open(exp_dir / 'test_ubs5_stepsize0.01.pkl', 'rb') as f:
        mses = pickle.load(f)
    assert list(mses) == ['mses'] and mses['mses'].shape == (600, 11)
    np.testing.assert_array_equal(mses['mses'], rows)
    np.testing.assert_allclose(values[0], rows.mean(0), rtol=1e-6)
    np.testing.assert_allclose(values[1], rows.std(0), rtol=1e-6)
    np.testing.assert_allclose(values[2], 1.96 * rows.std(0) / np.sqrt(600), rtol=1e-6)
    # the readable table and where the results went
    at = out.index('[maml-tf2] validation mean squared error over 600 tasks (mean ± 95% CI), model29 '
                   '(30 iterations trained), tested in ' + out[-13].split('tested in ')[1])
    assert out[at + 1] == f'[maml-tf2]   pre-update: {values[0][0]:.4f} ± {values[2][0]:.4f}'
    assert out[at + 11] == f'[maml-tf2]      step 10: {values[0][10]:.4f} ± {values[2][10]:.4f}'
    assert out[-1] == (f'[maml-tf2] wrote {exp_dir}/results/val_model29_ubs5_stepsize0.01.{{csv,pkl,json}} and the '
                       f'original\'s {exp_dir}/test_ubs5_stepsize0.01.{{csv,pkl}}')
    assert _csv(exp_dir / 'results' / 'val_model29_ubs5_stepsize0.01.csv') == table


def test_validation_and_test_results_never_overwrite_each_other(tmp_path, capsys, monkeypatch):
    """`--train=False` and `--train=False --test_set=True` (and another --test_iter): a result triple each."""
    import json
    monkeypatch.setattr(main, 'NUM_TEST_POINTS', 30)
    config = _sine(tmp_path, metatrain_iterations=21, update_batch_size=2)
    main.train(main.prepare(config), FAST)
    exp_dir = tmp_path / 'logs' / 'cls_5.mbs_4.ubs_2.numstep1.updatelr0.01nonorm'
    capsys.readouterr()
    main.test(main.prepare(config.replace(train=False)))
    assert 'Mean validation accuracy/loss, stddev, and confidence intervals' in capsys.readouterr().out
    main.test(main.prepare(config.replace(train=False, test_set=True)))
    out = capsys.readouterr().out
    assert 'Mean test accuracy/loss, stddev, and confidence intervals' in out and 'Mean validation' not in out
    main.test(main.prepare(config.replace(train=False, test_iter=20, update_batch_size=5, train_update_batch_size=2)))
    results = sorted(os.listdir(exp_dir / 'results'))
    assert results == sorted(f'{name}.{ext}' for ext in ('csv', 'pkl', 'json') for name in (
        'val_model20_ubs2_stepsize0.01', 'test_model20_ubs2_stepsize0.01', 'val_model20_ubs5_stepsize0.01'))
    with open(exp_dir / 'results' / 'test_model20_ubs2_stepsize0.01.json') as f:
        record = json.load(f)
    assert (record['split'], record['checkpoint'], record['iterations_trained'], record['num_tasks'],
            record['inner_steps'], record['metric']) == ('test', str(exp_dir / 'model20'), 21, 30, 10, 'mse')
    table = np.array(_csv(exp_dir / 'results' / 'test_model20_ubs2_stepsize0.01.csv')[1:], dtype=np.float64)
    np.testing.assert_allclose([record['means'], record['stds'], record['ci95']], table, rtol=1e-6)
    assert record['config']['test_set'] is True and record['config']['update_batch_size'] == 2
    assert record['columns'] == ['update' + str(i) for i in range(11)] and record['nonfinite_tasks'] == [0] * 11
    assert record['git_commit'] and record['date'].startswith('20')
    # the original's pair is still written, by the last test
    assert _csv(exp_dir / 'test_ubs5_stepsize0.01.csv') == _csv(exp_dir / 'results' / 'val_model20_ubs5_stepsize0.01.csv')


def _events(exp_dir):
    import tensorflow as tf
    tags = {}
    for path in glob.glob(os.path.join(exp_dir, 'events.out.tfevents.*')):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(
                    (event.step, float(tf.make_ndarray(value.tensor)), value.metadata.plugin_data.plugin_name))
    return tags


def test_tensorboard_has_the_originals_tags(tmp_path):
    config = _sine(tmp_path, metatrain_iterations=21)
    e = main.prepare(config)
    main.train(e, FAST)
    tags = _events(e.exp_dir)
    # TF1 wrote 'metatrain_Post-update loss, step 1' as 'metatrain_Post-update_loss__step_1'
    expected = {'metatrain_Pre-update_loss'} | {f'metatrain_Post-update_loss__step_{j}' for j in range(1, 6)}
    assert set(tags) == expected
    assert [s for s, _, _ in tags['metatrain_Pre-update_loss']] == [0, 10, 20]
    assert all(plugin == 'scalars' and np.isfinite(v) for vals in tags.values() for _, v, plugin in vals)
    assert actions.tf1_tag('metaval_Post-update accuracy, step 10') == 'metaval_Post-update_accuracy__step_10'


def test_no_summaries_with_log_false(tmp_path):
    e = main.prepare(_sine(tmp_path, metatrain_iterations=3, log=False))
    main.train(e, FAST)
    assert not glob.glob(os.path.join(e.exp_dir, 'events.*'))
    assert os.path.isfile(os.path.join(e.exp_dir, 'model2.index'))


def test_pretrain_baseline(tmp_path, capsys):
    config = _sine(tmp_path, pretrain_iterations=20, metatrain_iterations=5)
    e = main.prepare(config)
    before = {k: v.numpy().copy() for k, v in e.model.weights.items()}
    main.train(e, main.Intervals(summary=10, save=100, print=10, test_print=100))
    out = capsys.readouterr().out.splitlines()
    assert [line.split(':')[0] for line in out if 'Iteration' in line] == ['Pretrain Iteration 10', 'Iteration 0']
    assert np.isclose(e.model.pretrain_optimizer.beta1_power.numpy(), 0.9 ** 21)
    assert np.isclose(e.model.metatrain_optimizer.beta1_power.numpy(), 0.9 ** 6)
    assert any(not np.array_equal(before[k], v.numpy()) for k, v in e.model.weights.items())


def test_oracle_baseline_feeds_amplitude_and_phase(tmp_path, capsys):
    config = _sine(tmp_path, baseline='oracle', metatrain_iterations=12)
    e = main.prepare(config)
    assert e.run_config.pretrain_iterations == 12 and e.run_config.metatrain_iterations == 0
    assert e.model.weights['w1'].shape == (3, 40)
    batch = batches.sinusoid_batch(e.data_generator.__class__(10, 4, e.run_config), e.run_config)
    inputa = batch[0].numpy()
    assert inputa.shape == (4, 5, 3) and np.all(inputa[:, :, 1] == inputa[:, :1, 1])   # amp column per task
    main.train(e, main.Intervals(summary=10, save=100, print=10, test_print=100))
    assert 'Pretrain Iteration 10: ' in capsys.readouterr().out
    rows = main.test(main.prepare(config.replace(train=False)))
    assert rows.shape == (600, 11)
    assert os.path.isfile(os.path.join(e.exp_dir, 'test_ubs5_stepsize0.01.csv'))


def test_completed_run_is_not_trained_again(tmp_path, capsys):
    config = _sine(tmp_path, metatrain_iterations=3)
    main.train(main.prepare(config), FAST)
    e = main.prepare(config)
    assert e.start_itr == 3
    assert main.train(e, FAST) == 3
    assert 'nothing to do' in capsys.readouterr().out
    # resumed for more iterations: the compile line says how long the first iteration took last time
    main.train(main.prepare(config.replace(metatrain_iterations=5)), FAST)
    out = capsys.readouterr().out.splitlines()
    last = [line for line in out if line.startswith('[maml-tf2] first meta-training iteration (0)')]
    assert not last and out[2].startswith('[maml-tf2] iteration 3: tracing the meta-training step; that took ')
    assert out[2].endswith('s last time ...')


def test_usage_errors_come_before_tensorflow_is_imported(tmp_path):
    """Flag values, paths that do not exist and flag combinations: one line, with TensorFlow not imported."""
    code = ('import sys; sys.argv[0] = "main.py"; sys.path.insert(0, {repo!r}); import main; from absl import app\n'
            'try:\n    app.run(main.main, flags_parser=main.parse_flags)\n'
            'except SystemExit as e:\n    print("tensorflow" in sys.modules, e.code)').format(repo=REPO)
    for args in (['--norm=batchnorm'], ['--datasource=omniglot', '--data_dir=' + str(tmp_path / 'nowhere')],
                 ['--tf1_checkpoint=' + str(tmp_path / 'none' / 'model1'), '--train=False'],
                 ['--steps_per_execution=5', '--noxla'], ['--logdir=' + str(tmp_path / 'f' / 'x')]):
        (tmp_path / 'f').write_text('')
        r = subprocess.run([sys.executable, '-c', code, *args], cwd=tmp_path, capture_output=True, text=True,
                           timeout=120)
        assert r.stdout.split() == ['False', '2'], (args, r.stdout, r.stderr)
        assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith('main.py: error: '), r.stderr


def test_xlas_slow_compile_banner_is_dropped_and_other_lines_pass(tmp_path):
    from infra import quiet
    banner = ['E0000 00:00:1796664863.718847    8082 slow_operation_alarm.cc:73] ', '*' * 32,
              '[Compiling module a_inference__metatrain_step_123__.4567] Very slow compile? If you want to file a '
              'bug, run with envvar XLA_FLAGS=--xla_dump_to=/tmp/foo and attach the results.', '*' * 32,
              'E0000 00:00:1796664990.1 8082 slow_operation_alarm.cc:140] The operation took 2m12.850942799s', '',
              '*' * 32, '[Compiling module a_inference__metatrain_step_123__.4567] Very slow compile? If you want '
              'to file a bug, run with envvar XLA_FLAGS=--xla_dump_to=/tmp/foo and attach the results.', '*' * 32]
    lines = ['before', *banner, '', 'after', '*** a real line of stars after a real line', 'Traceback (most recent '
             'call last):']
    assert quiet.drop_lines(lines) == ['before', 'after', '*** a real line of stars after a real line',
                                       'Traceback (most recent call last):']
    # the whole-process filter: C++-style writes to fd 2 and Python's last words before exit both arrive in order
    code = ('import os, sys; sys.path.insert(0, {repo!r}); from infra import quiet; quiet.filter_stderr()\n'
            'os.write(2, ("\\n".join({banner!r}) + "\\nreal line\\n").encode())\n'
            'print("main.py: error: last words", file=sys.stderr); sys.exit(2)').format(repo=REPO, banner=banner)
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.splitlines() == ['real line', 'main.py: error: last words'], r.stderr


def test_command_line_train_then_test_with_xla(tmp_path):
    """The real entry point, once, with its defaults (XLA on)."""
    args = [sys.executable, os.path.join(REPO, 'main.py'), '--metatrain_iterations=3', '--meta_batch_size=2',
            '--norm=None', '--update_batch_size=2', '--update_lr=0.01', '--logdir=' + str(tmp_path / 'sine')]
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    r = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ''                       # TensorFlow's start-up lines are hidden (--verbose shows them)
    assert r.stdout.splitlines()[0] == 'Done initializing, starting training.'
    r = subprocess.run(args + ['--train=False'], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ''
    exp_dir = tmp_path / 'sine' / 'cls_5.mbs_2.ubs_2.numstep1.updatelr0.01nonorm'
    assert r.stdout.splitlines()[0] == 'Restoring model weights from ' + str(exp_dir / 'model2')
    assert len(_csv(exp_dir / 'test_ubs2_stepsize0.01.csv')) == 4


@pytest.mark.slow
def test_divergence_is_one_line_and_exit_status_3(tmp_path):
    """An inner step size that blows the post-update loss up (to inf, or nan) at iteration 0: nothing is saved."""
    status, stderr, files = _cli(tmp_path, '--metatrain_iterations=5', '--meta_batch_size=2', '--norm=None',
                                 '--update_lr=1e30', '--xla=False', verbose_tf=True)
    assert status == 3 and len(stderr) == 1, stderr
    assert re.fullmatch(r'main.py: error: training diverged at iteration 0: the meta-training objective is (nan|inf); '
                        r'no checkpoint was saved; train again with e.g. a lower --meta_lr or --update_lr', stderr[0])
    assert not [f for f in files if 'model' in os.path.basename(f)]


# ---------------------------------------------------------------------------- classification
def fake_omniglot(root, alphabets=3, characters=4, drawings=3):
    """A tiny Omniglot folder (images_background/alphabet/character/*.png, random 28x28 1-bit drawings)."""
    from PIL import Image
    rng = np.random.RandomState(0)
    for a in range(alphabets):
        for c in range(characters):
            d = os.path.join(root, 'images_background', f'alphabet{a}', f'character{c + 1:02d}')
            os.makedirs(d, exist_ok=True)
            for i in range(drawings):
                Image.fromarray(rng.rand(28, 28) > 0.5).save(os.path.join(d, f'{a}{c}_{i:02d}.png'))
    return str(root)


def omniglot_config(tmp_path, monkeypatch, **changes):
    """3-way 1-shot on fake_omniglot: 6 training and 4 validation characters, 4 filters."""
    monkeypatch.setenv('MAML_TF2_CACHE', 'off')
    base = dict(datasource='omniglot', num_classes=3, meta_batch_size=2, update_batch_size=1, update_lr=0.4,
                conv=False, metatrain_iterations=11, seed=0, xla=False, num_train_classes=6,
                num_val_classes=4, data_dir=fake_omniglot(tmp_path / 'omniglot'), logdir=str(tmp_path / 'logs'))
    return Config(**{**base, **changes})


def test_omniglot_training_prints_accuracies_validation_and_metaval_summaries(tmp_path, monkeypatch, capsys):
    e = main.prepare(omniglot_config(tmp_path, monkeypatch))
    main.train(e, main.Intervals(summary=5, save=10, print=5, test_print=10))
    out = capsys.readouterr().out.splitlines()
    prints = [line for line in out if not line.startswith('[maml-tf2]')]
    assert [p.split(':')[0] for p in prints] == ['Done initializing, starting training.', 'Iteration 5',
                                                 'Iteration 10', 'Validation results']
    for line in prints[1:]:    # accuracies, as the original printed for classification
        pre, post = (float(v) for v in line.split(': ')[1].split(', '))
        assert 0 <= pre <= 1 and 0 <= post <= 1
    tags = _events(e.exp_dir)
    steps = range(1, 11)       # omniglot unrolls test_num_updates = 10 steps in training summaries
    for prefix in ('metatrain_', 'metaval_'):
        expected = {prefix + 'Pre-update_loss', prefix + 'Pre-update_accuracy'}
        expected |= {f'{prefix}Post-update_{kind}__step_{j}' for kind in ('loss', 'accuracy') for j in steps}
        assert {t for t in tags if t.startswith(prefix)} == expected
        assert [s for s, _, _ in tags[prefix + 'Pre-update_accuracy']] == [0, 5, 10]


@pytest.mark.slow
def test_omniglot_test_writes_accuracies(tmp_path, monkeypatch):
    config = omniglot_config(tmp_path, monkeypatch, metatrain_iterations=2)
    main.train(main.prepare(config), FAST)
    rows = main.test(main.prepare(config.replace(train=False)))
    assert rows.shape == (600, 11) and np.all((rows >= 0) & (rows <= 1))
    exp_dir = tmp_path / 'logs' / 'cls_3.mbs_2.ubs_1.numstep1.updatelr0.4batchnorm'
    table = _csv(exp_dir / 'test_ubs1_stepsize0.4.csv')
    assert table[0] == ['update' + str(i) for i in range(11)] and len(table) == 4
    # each task has 3 query rows: an accuracy is a multiple of 1/3
    np.testing.assert_allclose(rows * 3, np.round(rows * 3), atol=1e-5)


# ---------------------------------------------------------------------------- bad input
def _cli(tmp_path, *args, verbose_tf=False):
    """Runs main.py in tmp_path; returns (exit status, stderr lines, files under tmp_path afterwards).
    `verbose_tf`: leave TF_CPP_MIN_LOG_LEVEL unset (main.py's own default applies)."""
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    env.update({} if verbose_tf else {'TF_CPP_MIN_LOG_LEVEL': '3'}, MAML_TF2_CACHE='off')
    r = subprocess.run([sys.executable, os.path.join(REPO, 'main.py'), '--logdir=' + str(tmp_path / 'logs'), *args],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    files = sorted(os.path.relpath(os.path.join(d, n), tmp_path) for d, ds, fs in os.walk(tmp_path) for n in ds + fs)
    return r.returncode, r.stderr.splitlines(), files


@pytest.mark.parametrize('args,message', [
    (['--datasource=cifar'], "unknown --datasource='cifar'; use sinusoid, omniglot or miniimagenet"),
    (['--norm=group_norm'], "unknown --norm='group_norm'; use batch_norm, layer_norm or None"),
    (['--baseline=pretrained'], "unknown --baseline='pretrained'; use --baseline=oracle"),
    (['--baseline=oracle', '--datasource=omniglot'], '--baseline=oracle needs --datasource=sinusoid'),
    (['--meta_batch_size=0'], '--meta_batch_size=0 must be > 0; pass a positive value (default 25)'),
    (['--update_batch_size=-1'], '--update_batch_size=-1 must be > 0'),
    (['--num_classes=0'], '--num_classes=0 must be > 0'),
    (['--num_updates=0'], '--num_updates=0 must be > 0'),
    (['--num_filters=0'], '--num_filters=0 must be > 0'),
    (['--update_lr=0'], '--update_lr=0.0 must be > 0'),
    (['--meta_lr=-0.1'], '--meta_lr=-0.1 must be > 0'),
    (['--metatrain_iterations=-5'], '--metatrain_iterations=-5 must be >= 0'),
    (['--pretrain_iterations=-1'], '--pretrain_iterations=-1 must be >= 0'),
    (['--metatrain_iterations=0'], 'nothing to train'),
    (['--train_update_lr=0'], '--train_update_lr=0.0 must be > 0 or -1'),
    (['--train=False'], 'no checkpoint to test in '),
    (['--train=False', '--test_iter=7'], 'model7 (--test_iter=7); pick an iteration that was saved'),
    (['--datasource=omniglot', '--data_dir=nowhere'], '--data_dir=nowhere is not a folder'),
    (['--num_classes=five'], "flag --num_classes=five: invalid literal for int() with base 10: 'five'"),
    (['--no_such_flag=1'], 'Unknown command line flag'),
    (['extra'], "unexpected argument 'extra'"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    status, stderr, files = _cli(tmp_path, *args)
    assert status == 2
    assert len(stderr) == 1 and stderr[0].startswith('main.py: error: ') and message in stderr[0], stderr
    if 'data_dir' not in message:     # DataError's own format is '<what>: <how to fix>'
        assert '; ' in stderr[0]      # <what is wrong>; <how to fix>
    assert files == []


def test_unwritable_logdir_is_found_before_training(tmp_path):
    (tmp_path / 'a_file').write_text('x')
    status, stderr, files = _cli(tmp_path, '--logdir=' + str(tmp_path / 'a_file' / 'logs'))
    assert status == 2 and len(stderr) == 1, stderr
    assert stderr[0] == (f'main.py: error: --logdir={tmp_path}/a_file/logs cannot be used: {tmp_path}/a_file '
                         f'is not a directory; choose another directory')
    assert files == ['a_file']


def test_writable_dir_check_creates_nothing(tmp_path):
    checks.check_writable_dir(str(tmp_path / 'x' / 'y'), '--logdir=x')
    assert os.listdir(tmp_path) == []
    (tmp_path / 'f').write_text('')
    with pytest.raises(main.UsageError, match='is not a directory'):
        checks.check_writable_dir(str(tmp_path / 'f'), '--logdir=f')


# ---------------------------------------------------------------------------- quiet by default, any learner
@pytest.mark.parametrize('line, noise', [
    ('WARNING: All log messages before absl::InitializeLog() is called are written to STDERR', True),
    ('I0000 00:00:1796192875.824314   11015 port.cc:153] oneDNN custom operations are on. You may see', True),
    ('I0000 00:00:1796192875.824760   11015 cudart_stub.cc:31] Could not find cuda drivers on your machine', True),
    ('W0000 00:00:1796192875.8 11015 onednn.cc:52] oneDNN supports DT_INT64 only on platforms with AVX-512.', True),
    ('To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow', True),
    ('E0000 00:00:1796192877.113317   11015 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error', True),
    ('E0000 00:00:1796192877.113317   11015 op_kernel.cc:1830] OP_REQUIRES failed: out of memory', False),
    ('Traceback (most recent call last):', False),
])
def test_tensorflow_start_up_noise_is_told_from_real_errors(line, noise):
    assert bool(quiet.TF_NOISE.match(line)) == noise


def test_summaries_and_tables_for_a_learner_without_inner_steps():
    """T = 0 (e.g. ProtoNets): the query loss / accuracy is the only column, and the 'post-update' value."""
    import tensorflow as tf
    from maml import MetaOutput
    fields = dict.fromkeys(MetaOutput._fields)
    out = MetaOutput(**{**fields, 'total_loss1': tf.constant(0.5), 'total_losses2': tf.zeros([0]),
                        'total_accuracy1': tf.constant(0.75), 'total_accuracies2': tf.zeros([0])})
    loss, acc = actions.post_update(out, 5)
    assert (float(loss), float(acc)) == (0.5, 0.75)
    assert set(actions.summary_values(out, True)) == {'Pre-update loss', 'Pre-update accuracy'}
    assert results.rows_table('accuracy', np.array([0.987]), np.array([0.0031])) == [
        '[maml-tf2]        query:  98.70% ± 0.31%']
    assert results.rows_table('mse', np.array([1.5, 0.25]), np.array([0.1, 0.01])) == [
        '[maml-tf2]   pre-update: 1.5000 ± 0.1000', '[maml-tf2]       step 1: 0.2500 ± 0.0100']
