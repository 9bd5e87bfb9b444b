"""scripts/plots.py: run folders parsed back into configs, the adaptation helper against the model's
own losses, the event and result readers against known values, each figure's content and PNG, the CLI.

Two tiny sinusoid runs (20 iterations, MAML and pretrained) are trained once for the module through
main.py, in the layout `logs/<experiment>/<exp_string>/` that `plots.py all` reads (it also reads
main.py's own `<logdir>/<exp_string>/` and reproduce.py's `<experiment>/seed<s>/<exp_string>/`).
"""
import os
import pickle
import struct
import sys

import numpy as np
import pytest
import tensorflow as tf

import main
from infra import results
from infra import actions
from infra import batches
from config import Config, exp_string
from conftest import REPO

sys.path.insert(0, os.path.join(REPO, 'scripts'))
import plots  # noqa: E402

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
FAST = main.Intervals(summary=10, save=10, print=10, test_print=100)
TEST_TASKS = 50           # main.test's task count, lowered for speed


def _sine(logs, experiment, **changes):
    base = dict(datasource='sinusoid', metatrain_iterations=20, meta_batch_size=4, update_batch_size=10,
                update_lr=0.01, norm='None', seed=0, xla=False, logdir=os.path.join(logs, experiment))
    return Config(**{**base, **changes})


@pytest.fixture(scope='module')
def logs(tmp_path_factory):
    """A logs folder with sine_k10_maml (trained, tested with K=10), sine_k10_pretrained (trained,
    a pkl-only K=10 result with known rows) and sine_k10_oracle (only a CSV with known values)."""
    root = str(tmp_path_factory.mktemp('logs'))
    maml = _sine(root, 'sine_k10_maml')
    main.train(main.prepare(maml), FAST)
    old, main.NUM_TEST_POINTS = main.NUM_TEST_POINTS, TEST_TASKS
    try:
        main.test(main.prepare(maml.replace(train=False)))
    finally:
        main.NUM_TEST_POINTS = old
    pre = _sine(root, 'sine_k10_pretrained', pretrain_iterations=20, metatrain_iterations=0)
    main.train(main.prepare(pre), FAST)
    rows = np.arange(TEST_TASKS * 11, dtype=np.float32).reshape(TEST_TASKS, 11) / 100.0
    with open(results.test_file_prefix(pre) + '.pkl', 'wb') as f:
        pickle.dump({'mses': rows}, f)
    oracle = _sine(root, 'sine_k10_oracle', baseline='oracle')
    os.makedirs(os.path.join(oracle.logdir, exp_string(oracle)))
    with open(results.test_file_prefix(oracle) + '.csv', 'w') as f:
        f.write('update0,update1,update2\n0.05,0.04,0.03\n0.5,0.4,0.3\n0.0125,0.01,0.0075\n')
    return root


def _exp_dir(logs, experiment):
    (name,) = os.listdir(os.path.join(logs, experiment))
    return os.path.join(logs, experiment, name)


def _check_png(path):
    """Asserts `path` is a PNG with a non-empty image; returns (width, height) from its IHDR."""
    with open(path, 'rb') as f:
        head = f.read(24)
    assert head[:8] == PNG_SIGNATURE and head[12:16] == b'IHDR'
    width, height = struct.unpack('>II', head[16:24])
    assert width > 100 and height > 100 and os.path.getsize(path) > 1000
    return width, height


def _labels(ax):
    return [line.get_label() for line in ax.lines if not line.get_label().startswith('_')]


# ---------------------------------------------------------------------------- run folders
@pytest.mark.parametrize('changes', [
    dict(datasource='sinusoid', norm='None', update_batch_size=10, update_lr=0.01),
    dict(datasource='sinusoid', norm='None', update_batch_size=10, update_lr=0.01, baseline='oracle'),
    dict(datasource='omniglot', meta_batch_size=32, update_batch_size=1, update_lr=0.4),
    dict(datasource='omniglot', num_classes=20, meta_batch_size=16, update_lr=0.1, num_updates=5, norm='layer_norm',
         stop_grad=True),
    dict(datasource='miniimagenet', meta_batch_size=4, update_batch_size=5, update_lr=1e-05, num_updates=5,
         num_filters=32, max_pool=True),
])
def test_run_folder_names_parse_back_into_the_config(changes):
    config = Config(logdir='some/logs', **changes)
    parsed = plots.config_from_exp_dir(os.path.join('some/logs', exp_string(config)), datasource=config.datasource)
    assert exp_string(parsed) == exp_string(config)
    assert parsed.logdir == 'some/logs'
    for field in ('num_classes', 'meta_batch_size', 'update_batch_size', 'update_lr', 'num_updates', 'norm',
                  'num_filters', 'max_pool', 'stop_grad', 'baseline'):
        assert getattr(parsed, field) == getattr(config, field), field


@pytest.mark.parametrize('name', ['model1000', 'cls_5.mbs_25.ubs_10.numstep1.updatelr0.01',
                                  'cls_5.mbs_25.ubs_10.numstep1.updatelr0.01nonormx', 'sine_k10_maml'])
def test_other_folder_names_are_refused(name):
    with pytest.raises(plots.UsageError, match='is not a run folder'):
        plots.config_from_exp_dir(os.path.join('logs', name))


# ---------------------------------------------------------------------------- adaptation
def test_adapted_weights_give_the_models_own_losses(logs):
    """The helper's weights after j steps reproduce MAML.evaluate's pre-update loss and its
    post-update losses after 1..10 steps on the same task (which do change step by step)."""
    experiment, iterations = plots.restore_sinusoid(_exp_dir(logs, 'sine_k10_maml'))
    assert iterations == 20
    model = experiment.model
    inputa, labela, inputb, labelb = batches.sinusoid_batch(experiment.data_generator, experiment.run_config)
    out = model.evaluate(inputa, labela, inputb, labelb, num_updates=10)
    weights = plots.adapted_weights(model, inputa, labela, 10)
    assert len(weights) == 11 and set(weights[0]) == set(model.weights)
    mine_a = tf.reduce_mean(tf.square(model.forward(inputa, weights[0]) - labela)).numpy()
    mine_b = [tf.reduce_mean(tf.square(model.forward(inputb, w) - labelb)).numpy() for w in weights[1:]]
    np.testing.assert_allclose(mine_a, out.total_loss1.numpy(), rtol=1e-5)
    np.testing.assert_allclose(mine_b, out.total_losses2.numpy(), rtol=1e-5)
    assert np.all(np.abs(np.diff(mine_b)) > 1e-7)


def test_sine_task_is_the_generators_first_task():
    amp, phase, x, y = plots.sine_task(3, 10)
    amp5, phase5, x5, y5 = plots.sine_task(3, 5)
    rng = np.random.RandomState(3)
    assert amp == rng.uniform(0.1, 5.0) and phase == rng.uniform(0, np.pi)
    np.testing.assert_array_equal(x, rng.uniform(-5, 5, 20)[:10])
    np.testing.assert_allclose(y, amp * np.sin(x - phase))
    assert (amp5, phase5) == (amp, phase) and np.array_equal(x5, x[:5])


# ---------------------------------------------------------------------------- readers
def test_event_reader_returns_the_values_written(tmp_path):
    """TF2 tensor summaries as main.py writes them, a second file that rewrites a step (the later
    value wins), and a TF1 simple_value event as the original's files hold them."""
    run = tmp_path / 'run'
    writer = tf.summary.create_file_writer(str(run), filename_suffix='.a')
    actions.write_scalars(writer, 'metatrain_', {'Pre-update loss': tf.constant(1 / 3),
                                               'Post-update loss, step 1': tf.constant(0.125)}, 0)
    actions.write_scalars(writer, 'metatrain_', {'Pre-update loss': tf.constant(2.5e-7)}, 100)
    actions.write_scalars(writer, 'metatrain_', {'Pre-update loss': tf.constant(7.0)}, 200)
    writer.close()
    writer = tf.summary.create_file_writer(str(run), filename_suffix='.b')
    actions.write_scalars(writer, 'metatrain_', {'Pre-update loss': tf.constant(8.5)}, 200)
    writer.close()
    files = plots.event_files(str(run))
    assert len(files) == 2 and files[0].endswith('.a')
    event = tf.compat.v1.Event(step=300, summary=tf.compat.v1.Summary(
        value=[tf.compat.v1.Summary.Value(tag='metaval_Pre-update_accuracy', simple_value=0.75)]))
    with tf.io.TFRecordWriter(str(run / 'events.out.tfevents.9999999999.tf1')) as f:
        f.write(event.SerializeToString())

    scalars = plots.read_scalars(str(run))
    assert set(scalars) == {'metatrain_Pre-update_loss', 'metatrain_Post-update_loss__step_1',
                            'metaval_Pre-update_accuracy'}
    steps, values = scalars['metatrain_Pre-update_loss']
    assert steps.tolist() == [0, 100, 200]
    assert values.tolist() == [np.float32(1 / 3), np.float32(2.5e-7), 8.5]
    assert scalars['metatrain_Post-update_loss__step_1'][1].tolist() == [0.125]
    assert scalars['metaval_Pre-update_accuracy'][0].tolist() == [300]
    assert scalars['metaval_Pre-update_accuracy'][1].tolist() == [0.75]


def test_event_reader_stops_at_a_truncated_record(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    for step in (0, 100):
        actions.write_scalars(writer, 'metatrain_', {'Pre-update loss': tf.constant(float(step))}, step)
    writer.close()
    (path,) = plots.event_files(str(tmp_path))
    with open(path, 'ab') as f:
        f.write(b'\x10\x00\x00\x00\x00\x00\x00\x00abc')       # a record cut short, as while being written
    assert plots.read_scalars(path)['metatrain_Pre-update_loss'][1].tolist() == [0.0, 100.0]


def test_result_reader_reads_the_csv_and_falls_back_to_the_pkl(logs):
    maml = plots.read_test_results(_exp_dir(logs, 'sine_k10_maml'))
    assert list(maml) == [(10, '0.01')]
    with open(maml[(10, '0.01')]['path'][:-4] + '.pkl', 'rb') as f:
        rows = pickle.load(f)['mses']
    assert rows.shape == (TEST_TASKS, 11)
    np.testing.assert_allclose(maml[(10, '0.01')]['mean'], rows.mean(0), rtol=1e-6)
    pre = plots.read_test_results(_exp_dir(logs, 'sine_k10_pretrained'))[(10, '0.01')]
    rows = np.arange(TEST_TASKS * 11, dtype=np.float32).reshape(TEST_TASKS, 11) / 100.0
    assert pre['n_steps'] == 10 and pre['path'].endswith('.pkl')
    np.testing.assert_array_equal(pre['mean'], np.mean(rows, 0))
    np.testing.assert_array_equal(pre['ci95'], 1.96 * np.std(rows, 0) / np.sqrt(TEST_TASKS))
    oracle = plots.read_test_results(_exp_dir(logs, 'sine_k10_oracle'))[(10, '0.01')]
    assert oracle['mean'].tolist() == [0.05, 0.04, 0.03] and oracle['ci95'].tolist() == [0.0125, 0.01, 0.0075]


# ---------------------------------------------------------------------------- figures
def test_fits_figure_has_a_panel_per_model_and_k(logs, tmp_path):
    models = [('MAML', _exp_dir(logs, 'sine_k10_maml')), ('pretrained', _exp_dir(logs, 'sine_k10_pretrained'))]
    fig = plots.fits_figure([(5, models), (10, models)], seed=0)
    axes = fig.axes
    assert len(axes) == 4
    for ax, (k, label) in zip(axes, [(5, 'MAML'), (5, 'pretrained'), (10, 'MAML'), (10, 'pretrained')]):
        assert ax.get_title() == f'{label}, K={k} (20 it.{", trained K=10" if k == 5 else ""}, α=0.01)'
        assert _labels(ax) == ['ground truth', 'pre-update', '1 grad step', '10 grad steps']
        amp, phase, x, y = plots.sine_task(0, k)
        np.testing.assert_allclose(ax.lines[0].get_ydata(), amp * np.sin(plots.GRID - phase))
        (points,) = ax.collections
        np.testing.assert_allclose(points.get_offsets(), np.stack([x, y], 1))
        pre, one, ten = (line.get_ydata() for line in ax.lines[1:])
        assert not np.allclose(pre, one) and not np.allclose(one, ten)
    out = plots.fits(*[d for _, d in models], str(tmp_path / 'fits.png'), ks=(10,))
    _check_png(out)


def test_mse_figure_draws_the_results_with_bands_and_the_oracle(logs, tmp_path):
    runs = [('MAML', _exp_dir(logs, 'sine_k10_maml')), ('pretrained', _exp_dir(logs, 'sine_k10_pretrained'))]
    fig = plots.mse_figure(plots.mse_panels(runs, oracle=_exp_dir(logs, 'sine_k10_oracle')))
    (ax,) = fig.axes
    assert _labels(ax)[:2] == ['MAML', 'pretrained'] and _labels(ax)[2] == 'oracle'
    expected = plots.read_test_results(runs[0][1])[(10, '0.01')]['mean']
    np.testing.assert_allclose(ax.lines[0].get_ydata(), expected)
    assert ax.lines[2].get_ydata()[0] == 0.05
    assert len(ax.collections) == 2                      # one CI band per run
    assert ax.get_title() == 'sinusoid, K=10 test tasks:\ntest mean and 95% confidence interval'
    _check_png(plots.mse(runs, str(tmp_path / 'mse.png')))


def test_mse_figure_marks_a_diverging_curve(tmp_path):
    exp_dir = tmp_path / exp_string(Config(norm='None', update_batch_size=5, update_lr=0.01))
    exp_dir.mkdir()
    (exp_dir / 'test_ubs5_stepsize0.01.csv').write_text(
        'update0,update1,update2,update3\n3.0,1.0,6e18,inf\n1,1,1,inf\n0.1,0.1,0.1,inf\n')
    (ax,) = plots.mse_figure([(5, [('MAML', str(exp_dir))], None)]).axes
    assert _labels(ax) == ['MAML (off scale from step 2)']
    assert ax.get_ylim() == (0, pytest.approx(1.15 * 3.1))


def test_curves_figure_sinusoid_and_classification(logs, tmp_path):
    exp_dir = _exp_dir(logs, 'sine_k10_maml')
    fig = plots.curves_figure(exp_dir)
    (ax,) = fig.axes
    assert _labels(ax) == ['metatrain pre-update', 'metatrain post-update, step 1',
                           'metatrain post-update, step 5']
    steps, values = plots.read_scalars(exp_dir)['metatrain_Pre-update_loss']
    assert steps.tolist() == [0, 10]
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), values)     # the raw, faint line
    assert fig._suptitle.get_text() == ('sine_k10_maml: sinusoid K=10, meta-training tasks\n'
                                        'cls_5.mbs_4.ubs_10.numstep1.updatelr0.01nonorm, summaries up to iteration 10')
    _check_png(plots.curves(exp_dir, str(tmp_path / 'curves.png')))

    run = tmp_path / 'omni' / exp_string(Config(datasource='omniglot', update_batch_size=1, update_lr=0.4))
    writer = tf.summary.create_file_writer(str(run))
    for itr in range(0, 1000, 100):
        for prefix in ('metatrain_', 'metaval_'):
            values = {'Pre-update loss': 1.6, 'Pre-update accuracy': 0.2}
            for j in range(1, 11):
                values.update({f'Post-update loss, step {j}': 1 / (j + itr), f'Post-update accuracy, step {j}': 0.9})
            actions.write_scalars(writer, prefix, {k: tf.constant(v) for k, v in values.items()}, itr)
    writer.close()
    fig = plots.curves_figure(str(run))
    loss_ax, acc_ax = fig.axes
    assert fig._suptitle.get_text().startswith(       # no checkpoint: the accuracies say classification
        'omni: classification 5-way 1-shot, meta-training (solid) and meta-validation (dashed) tasks\n')
    np.testing.assert_allclose(acc_ax.lines[0].get_ydata(), [20.0] * 10)      # in %
    for ax, what in ((loss_ax, 'loss'), (acc_ax, 'accuracy (%)')):
        assert ax.get_ylabel() == what
        assert _labels(ax) == [f'{p} {n}' for p in ('metatrain', 'metaval')
                               for n in ('pre-update', 'post-update, step 1', 'post-update, step 10')]
        assert [line.get_linestyle() for line in ax.lines if not line.get_label().startswith('_')] == \
            ['-'] * 3 + ['--'] * 3
    assert loss_ax.get_yscale() == 'log'


def _classification_run(folder, post, steps=1):
    """Writes metatrain_ / metaval_ summaries of a 5-way run at iterations 0, 100, ..., 900 into `folder`, post-update
    accuracy `post` after each of `steps` steps; returns the folder."""
    writer = tf.summary.create_file_writer(str(folder))
    for itr in range(0, 1000, 100):
        for prefix in ('metatrain_', 'metaval_'):
            values = {'Pre-update loss': 1.6, 'Pre-update accuracy': 0.2}
            for j in range(1, steps + 1):
                values.update({f'Post-update loss, step {j}': 0.5, f'Post-update accuracy, step {j}': post})
            actions.write_scalars(writer, prefix, {k: tf.constant(v) for k, v in values.items()}, itr)
    writer.close()
    return str(folder)


def test_curves_of_several_runs_in_one_figure(tmp_path):
    """Learners side by side: a colour per run, its post-update accuracy (%) after the steps it trained with (the
    folder's numstep, else the last logged step), training solid and validation dashed."""
    name = exp_string(Config(datasource='omniglot', update_batch_size=1, update_lr=0.4, num_updates=2))
    runs = [('MAML', _classification_run(tmp_path / 'a' / name, 0.75, steps=10)),
            ('ANIL', _classification_run(tmp_path / 'b' / 'other', 0.5, steps=3))]
    fig = plots.compare_figure(runs, smooth=3)
    (ax,) = fig.axes
    assert _labels(ax) == ['MAML, training (step 2)', 'MAML, validation (step 2)', 'ANIL, training (step 3)',
                           'ANIL, validation (step 3)']
    assert [line.get_linestyle() for line in ax.lines] == ['-', '--', '-', '--']
    assert ax.lines[0].get_color() == ax.lines[1].get_color() != ax.lines[2].get_color()
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [75.0] * 10)
    np.testing.assert_allclose(ax.lines[3].get_ydata(), [50.0] * 10)
    assert ax.get_ylabel() == 'post-update accuracy (%)'
    out = tmp_path / 'compare.png'
    assert plots.main(['curves', '--run', f'MAML={runs[0][1]}', '--run', f'ANIL={runs[1][1]}', '--out', str(out)]) == 0
    _check_png(out)


def test_running_mean():
    np.testing.assert_allclose(plots.running_mean([1, 2, 3, 4, 5], 2), [1, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(plots.running_mean([4.0], 10), [4.0])


# ---------------------------------------------------------------------------- CLI
def test_all_writes_every_figure_of_the_layout(logs, tmp_path, capsys):
    out = tmp_path / 'figures'
    assert plots.main(['all', '--logs', logs, '--out', str(out)]) == 0
    expected = {'curves_sine_k10_maml.png', 'curves_sine_k10_pretrained.png', 'sine_fits.png', 'sine_mse.png'}
    assert set(os.listdir(out)) == expected
    for name in expected:
        _check_png(out / name)
    printed = [line for line in capsys.readouterr().out.splitlines() if not line.startswith('Restoring model')]
    assert sorted(printed) == sorted(str(out / name) for name in expected)


@pytest.mark.parametrize('args, message', [
    (['fits', '--maml', 'MISSING', '--pretrained', 'MISSING', '--out', 'OUT/f.png'], 'MISSING is not a folder'),
    (['fits', '--out', 'OUT/f.png'], 'fits needs --maml EXP_DIR and --pretrained EXP_DIR'),
    (['curves', '--run', 'LOGS', '--out', 'OUT/c.png'], 'no TensorBoard event files in'),
    (['curves', '--run', 'A=LOGS/sine_k10_maml/*', '--run', 'B=LOGS', '--out', 'OUT/c.png'],
     'no metatrain_ summaries in'),
    (['mse', '--run', 'LOGS/sine_k10_maml', '--out', 'OUT/m.png'], 'no test results'),
    (['fits', '--maml', 'LOGS/sine_k10_oracle/*', '--pretrained', 'LOGS/sine_k10_maml/*', '--out', 'OUT/f.png'],
     'is an oracle run'),
    (['all', '--logs', 'OUT', '--out', 'OUT'], 'is not a folder'),
    (['all', '--logs', 'EMPTY', '--out', 'OUT'], 'no runs under'),
    (['plot'], "invalid choice: 'plot'"),
])
def test_bad_input_is_one_line_and_writes_nothing(logs, tmp_path, capsys, args, message):
    empty = tmp_path / 'empty'
    empty.mkdir()
    subs = {'LOGS': logs, 'OUT': str(tmp_path / 'out'), 'EMPTY': str(empty)}
    argv = []
    for a in args:
        for key, value in subs.items():
            a = a.replace(key, value)
        if a.endswith('/*'):
            a = _exp_dir(logs, os.path.basename(a[:-2]))
        argv.append(a)
    with pytest.raises(SystemExit) as e:
        plots.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('plots.py: error: ') and err.count('\n') == 1 and message in err, err
    assert not os.path.exists(tmp_path / 'out')


def _omniglot_run(exp_dir, test_set=None, channels=1):
    """A classification run folder: a checkpoint whose conv1 has `channels` input channels, a test CSV, and
    (test_set not None) reproduce.py's run.json beside it with the test command."""
    os.makedirs(exp_dir)
    tf.train.Checkpoint(weights={'conv1': tf.Variable(tf.zeros([3, 3, channels, 4]))}).write(
        os.path.join(exp_dir, 'model1999'))
    with open(os.path.join(exp_dir, 'checkpoint'), 'w') as f:
        f.write('model_checkpoint_path: "model1999"\n')
    with open(os.path.join(exp_dir, 'test_ubs1_stepsize0.4.csv'), 'w') as f:
        f.write('update0,update1,update2\n0.2,0.85,0.9\n0.1,0.1,0.1\n0.01,0.02,0.02\n')
    if test_set is not None:
        with open(os.path.join(os.path.dirname(exp_dir), 'run.json'), 'w') as f:
            f.write('{"test_command": "python main.py --train=False' + (' --test_set=True' if test_set else '') + '"}')


def test_dataset_way_shot_and_split_of_a_run(logs, tmp_path):
    assert plots.dataset_of(_exp_dir(logs, 'sine_k10_maml')) == 'sinusoid'
    assert plots.describe(_exp_dir(logs, 'sine_k10_maml')) == 'sinusoid K=10'
    omni = str(tmp_path / 'a' / 'cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm')
    _omniglot_run(omni, test_set=True)
    assert plots.describe(omni) == 'Omniglot 5-way 1-shot' and plots.test_split(omni) == 'meta-test split'
    mini = str(tmp_path / 'b' / 'cls_5.mbs_4.ubs_5.numstep5.updatelr0.01hidden32maxpoolbatchnorm')
    _omniglot_run(mini, test_set=False, channels=3)
    assert plots.describe(mini) == 'MiniImagenet 5-way 5-shot' and plots.test_split(mini) == 'meta-validation split'
    bare = str(tmp_path / 'c' / 'cls_20.mbs_16.ubs_1.numstep5.updatelr0.1batchnorm')
    os.makedirs(bare)
    assert plots.describe(bare) == '? 20-way 1-shot' and plots.test_split(bare) == 'test split not recorded'


def test_accuracy_figure_is_in_percent_with_dataset_and_split(tmp_path):
    omni = str(tmp_path / 'omniglot_5w1s' / 'seed0' / 'cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm')
    _omniglot_run(omni, test_set=True)
    (ax,) = plots.mse_figure(plots.mse_panels([('seed 0', omni)]), accuracy=True).axes
    assert ax.get_title() == 'Omniglot 5-way 1-shot, meta-test split:\ntest mean and 95% confidence interval'
    assert ax.get_ylabel() == 'accuracy (%)'
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [20.0, 85.0, 90.0])


def test_find_runs_in_every_layout(logs, tmp_path):
    """main.py's own logdir, reproduce.py's layout and its seeds layout; the figures folder is not a run."""
    assert plots.find_runs(logs) == {n: _exp_dir(logs, n) for n in
                                     ('sine_k10_maml', 'sine_k10_oracle', 'sine_k10_pretrained')}
    plain = os.path.join(logs, 'sine_k10_maml')            # a main.py --logdir
    assert plots.find_runs(plain) == {os.path.basename(_exp_dir(logs, 'sine_k10_maml')): _exp_dir(logs, 'sine_k10_maml')}
    exp = _exp_dir(logs, 'sine_k10_maml')
    assert plots.find_runs(exp) == {os.path.basename(exp): exp}
    root = tmp_path / 'seeds'
    for s in (0, 2):
        _omniglot_run(str(root / 'omniglot_5w1s' / f'seed{s}' / 'cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm'),
                      test_set=True)
    (root / 'figures').mkdir()
    assert sorted(plots.find_runs(str(root))) == ['omniglot_5w1s_seed0', 'omniglot_5w1s_seed2']


def test_all_writes_into_the_logs_folder_by_default(tmp_path, capsys):
    root = tmp_path / 'seeds'
    for s in (0, 2):
        _omniglot_run(str(root / 'omniglot_5w1s' / f'seed{s}' / 'cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm'),
                      test_set=True)
    assert plots.main(['all', '--logs', str(root)]) == 0
    assert capsys.readouterr().out.splitlines() == [str(root / 'figures' / 'omniglot_5w1s_test.png')]
    _check_png(root / 'figures' / 'omniglot_5w1s_test.png')
    assert sorted(os.listdir(root)) == ['figures', 'omniglot_5w1s']


def test_all_skips_a_run_without_summaries_yet(tmp_path, capsys):
    """A run that is still training (event file, no metatrain_ summaries) is skipped with a note, not an error."""
    root = tmp_path / 'logs'
    _omniglot_run(str(root / 'omniglot_5w1s' / 'cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm'), test_set=True)
    young = root / 'young' / 'cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm'
    writer = tf.summary.create_file_writer(str(young))
    actions.write_scalars(writer, 'other_', {'loss': tf.constant(1.0)}, 0)
    writer.close()
    assert plots.main(['all', '--logs', str(root)]) == 0
    captured = capsys.readouterr()
    assert 'skipped the curves of young' in captured.err
    assert os.path.exists(root / 'figures' / 'omniglot_5w1s_test.png')


def test_tensorflow_start_up_lines_are_hidden(tmp_path):
    """`plots.py curves` as a user runs it: TensorFlow's start-up notices (absl's 'All log messages before
    absl::InitializeLog()', 'Could not find cuda drivers', CPU features) are not printed, as main.py hides them;
    the PNG's path is the only output."""
    import subprocess
    run = _classification_run(tmp_path / 'omni' / exp_string(Config(datasource='omniglot', update_batch_size=1,
                                                                      update_lr=0.4)), 0.9)
    out = tmp_path / 'c.png'
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}   # as a user's shell has it
    proc = subprocess.run([sys.executable, os.path.join(REPO, 'scripts', 'plots.py'), 'curves', '--run', run,
                           '--out', str(out)], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == [str(out)]
    from infra import quiet
    for line in proc.stderr.splitlines():
        assert not quiet.TF_NOISE.match(line), line
    assert 'absl::InitializeLog' not in proc.stderr and 'cuda drivers' not in proc.stderr, proc.stderr
    _check_png(str(out))
