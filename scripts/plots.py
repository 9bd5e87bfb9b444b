#!/usr/bin/env python3
"""Figures of maml-tf2 runs (PNG, matplotlib Agg): the paper's Figures 2 and 3 and learning curves.

    python scripts/plots.py fits   --maml EXP_DIR --pretrained EXP_DIR [--k 5 10] [--seed 0] --out FILE.png
    python scripts/plots.py mse    --run LABEL=EXP_DIR [--run ...] [--oracle EXP_DIR] --out FILE.png
    python scripts/plots.py curves --run EXP_DIR [--smooth 10] --out FILE.png
    python scripts/plots.py curves --run LABEL=EXP_DIR --run LABEL=EXP_DIR [...] --out FILE.png
    python scripts/plots.py [all]  [--logs logs] [--out FOLDER]     (default <logs>/figures)

EXP_DIR is one run's `<logdir>/<exp_string>` folder, as main.py writes it. Nothing is written into
docs/ unless asked: `--out docs/figures` redraws the committed figures.
  fits    (Figure 2) restores the latest checkpoint of a sinusoid MAML model and of a pretrained
          baseline, draws one test sinusoid (DataGenerator seeded with --seed) and for each K its
          first K points, adapts with 1 and 10 inner steps at the run's update_lr and plots the
          true function, the K points and the predictions before and after 1 and 10 steps over
          x in [-5, 5]: one panel per model and K.
  mse     (Figure 3) the test results `test_ubs<K>_stepsize<lr>.csv` (mean, std, ci95 rows; the
          `.pkl` when there is no CSV) against the number of inner steps, mean +- 95% CI, one
          panel per K tested; the oracle as a horizontal line at its pre-update value (it is
          given the amplitude and phase, it needs no adaptation). --accuracy for classification.
  curves  pre- and post-update loss (and accuracy) against the iteration from the run's
          TensorBoard event files (metatrain_ solid, metaval_ dashed), one PNG per run; the
          faint lines are the raw values (every 100 iterations), the solid ones their running
          mean over --smooth points. With several --run LABEL=EXP_DIR: one figure, a colour per
          run, the post-update accuracy (loss for regression) after the run's training inner steps,
          training solid, validation dashed (learners side by side from the same seed).
  all     (the default) every run under --logs into the folder --out (default <logs>/figures):
          run folders (event files, test results or a checkpoint) in any of the layouts
          `<logs>/<exp_string>/` (main.py --logdir=<logs>; named by exp_string),
          `<logs>/<experiment>/<exp_string>/` (reproduce.py; named experiment) and
          `<logs>/<experiment>/seed<s>/<exp_string>/` (reproduce.py --seeds; named
          `<experiment>_seed<s>`), or --logs itself being one: `curves_<name>.png` for each;
          `<name>_test.png` (accuracy in % vs steps; one figure for all seeds of an experiment)
          for the others with test results; and over the sinusoid groups
          `sine_k<K>_{maml,pretrained,oracle}[_seed<s>]`, `sine_fits.png` (a row per K with a
          MAML and a pretrained run, each row from the runs trained with that K, the lowest seed)
          and `sine_mse.png` (a panel per K: that group's results of tests with that K, a curve
          per seed).

Titles name the dataset (told by the checkpoint's first layer: 1 input for sinusoid, 3 with the
oracle, 28x28x1 images for Omniglot, 84x84x3 for MiniImagenet), N-way K-shot and the split
(meta-training / meta-validation for the curves; for test results meta-test when run.json's test
command has --test_set=True or a JSON beside the CSV says test_set, else "test split not recorded").

The model and config come from main.py (`prepare` restores the checkpoint; the Config is parsed
back from the experiment name, so no flags need repeating). A bad argument stops with one line,
`plots.py: error: <what>; <how to fix>`, exit status 2, before any PNG is written.
"""
import argparse
import collections
import csv
import glob
import os
import pickle
import re
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import config as config_lib  # noqa: E402
from config import Config  # noqa: E402

PROG = 'plots.py'
FIT_STEPS = (1, 10)              # inner steps shown in the fits figure, as the paper's Figure 2
GRID = np.linspace(-5.0, 5.0, 1000)
LOSS_TOP = 3.0                   # curves: the loss axis ends at LOSS_TOP x the highest pre-update loss
TEST_FILE = re.compile(r'^test_ubs(\d+)_stepsize(.+)\.(csv|pkl)$')
SINE_GROUP = re.compile(r'^sine_k(\d+)_(maml|pretrained|oracle)(?:_seed(\d+))?$')
SEED_NAME = re.compile(r'^(.+)_seed(\d+)$')
DATASETS = {1: 'sinusoid', 3: 'sinusoid', 784: 'Omniglot', 84 * 84 * 3: 'MiniImagenet'}   # first layer's inputs
CHANNELS = {1: 'Omniglot', 3: 'MiniImagenet'}                                            # conv1's input channels
EXP_STRING = re.compile(
    r'^cls_(?P<num_classes>\d+)\.mbs_(?P<meta_batch_size>\d+)\.ubs_(?P<ubs>\d+)\.numstep(?P<num_updates>\d+)'
    r'\.updatelr(?P<lr>\d[\d.]*(?:e[-+]?\d+)?)(?:hidden(?P<num_filters>\d+))?(?P<max_pool>maxpool)?'
    r'(?P<stop_grad>stopgrad)?(?P<oracle>oracle)?(?P<norm>batchnorm|layernorm|nonorm)$')
NORM_NAMES = {'batchnorm': 'batch_norm', 'layernorm': 'layer_norm', 'nonorm': 'None'}


class UsageError(Exception):
    """Something the user can fix; the message is one line: '<what is wrong>; <how to fix>'."""


def tensorflow():
    """The TensorFlow module, imported on first use through main.py's `infra.quiet.import_tensorflow`: the lines
    TensorFlow writes while it loads (absl's 'All log messages before absl::InitializeLog()' notice, 'Could not
    find cuda drivers', CPU features) are hidden as main.py hides them, any other line passed on to stderr."""
    from infra import quiet
    return quiet.import_tensorflow()


# ------------------------------------------------------------------------------------ runs
def config_from_exp_dir(exp_dir, **changes):
    """The Config of the run in `exp_dir` (`<logdir>/<exp_string>`), parsed back from its name.

    Returns a Config whose `exp_string` is the folder name and whose `logdir` is its parent, with
    `changes` applied afterwards (e.g. datasource, train=False): the name holds every field the
    model's shape depends on, which is all `prepare` needs to rebuild and restore it. Raises
    UsageError for a name main.py would not have written.
    """
    exp_dir = os.path.normpath(exp_dir)
    name = os.path.basename(exp_dir)
    m = EXP_STRING.match(name)
    config = None
    if m:
        g = m.groupdict()
        config = Config(num_classes=int(g['num_classes']), meta_batch_size=int(g['meta_batch_size']),
                        update_batch_size=int(g['ubs']), num_updates=int(g['num_updates']), update_lr=float(g['lr']),
                        num_filters=int(g['num_filters'] or 64), max_pool=bool(g['max_pool']),
                        stop_grad=bool(g['stop_grad']), baseline='oracle' if g['oracle'] else None,
                        norm=NORM_NAMES[g['norm']], logdir=os.path.dirname(exp_dir) or '.')
    if config is None or config_lib.exp_string(config) != name:
        raise UsageError(f'{exp_dir} is not a run folder (its name is no experiment name main.py writes, like '
                         f'cls_5.mbs_25.ubs_10.numstep1.updatelr0.01nonorm); pass <logdir>/<exp_string>')
    return config.replace(**changes)


def dataset_of(exp_dir):
    """'sinusoid', 'Omniglot' or 'MiniImagenet' by the shape of the first layer in the run's latest
    checkpoint (the inputs of `w1` or the channels of `conv1`), or None without a checkpoint or with an
    unknown shape."""
    tf = tensorflow()
    prefix = tf.train.latest_checkpoint(exp_dir)
    if not prefix:
        return None
    for name, shape in tf.train.list_variables(prefix):
        if re.search(r'(^|/)w1/\.ATTRIBUTES/VARIABLE_VALUE$', name) and len(shape) == 2:
            return DATASETS.get(shape[0])
        if re.search(r'(^|/)conv1/\.ATTRIBUTES/VARIABLE_VALUE$', name) and len(shape) == 4:
            return CHANNELS.get(shape[2])
    return None


def describe(exp_dir):
    """'sinusoid K=5', 'Omniglot 5-way 1-shot', ... of a run folder: the dataset (dataset_of; 'classification'
    when the run has accuracies but no checkpoint, '' if unknown) with N-way K-shot from its name."""
    m = re.match(r'^cls_(?P<num_classes>\d+)\.mbs_\d+\.ubs_(?P<ubs>\d+)', os.path.basename(os.path.normpath(exp_dir)))
    dataset = dataset_of(exp_dir)
    if dataset is None and any(b'Pre-update_accuracy' in open(f, 'rb').read() for f in event_files(exp_dir)):
        dataset = 'classification'
    if not m:
        return dataset or ''
    if dataset == 'sinusoid':
        return f'sinusoid K={m.group("ubs")}'
    return f'{dataset or "?"} {m.group("num_classes")}-way {m.group("ubs")}-shot'.strip()


def test_split(exp_dir):
    """'meta-test split' / 'meta-validation split' of a classification run's test results when recorded
    (a JSON beside the CSV with test_set, or reproduce.py's run.json beside the run folder), else
    'test split not recorded' (main.py writes the same file name for --test_set=True and False)."""
    import json
    for path in sorted(glob.glob(os.path.join(exp_dir, '*.json'))):
        try:
            with open(path) as f:
                value = json.load(f)
        except (OSError, ValueError):
            continue
        found = value.get('test_set', value.get('config', {}).get('test_set')) if isinstance(value, dict) else None
        if isinstance(found, bool):
            return 'meta-test split' if found else 'meta-validation split'
    try:
        with open(os.path.join(os.path.dirname(os.path.normpath(exp_dir)), 'run.json')) as f:
            command = json.load(f).get('test_command', '')
    except (OSError, ValueError):
        command = None
    if command:
        return 'meta-test split' if '--test_set=True' in command else 'meta-validation split'
    return 'test split not recorded'


def recorded_iterations(exp_dir):
    """{'pretrain_iterations': ..., 'metatrain_iterations': ...} from the record main.py stores in its latest
    checkpoint (`record`: JSON with the run's config), or {} for a checkpoint without one."""
    import json
    tf = tensorflow()
    prefix = tf.train.latest_checkpoint(exp_dir)
    try:
        reader = tf.train.load_checkpoint(prefix)
        key = 'record/.ATTRIBUTES/VARIABLE_VALUE'
        stored = json.loads(reader.get_tensor(key).decode()).get('config', {}) if reader.has_tensor(key) else {}
    except Exception:      # no or an unreadable checkpoint: main.prepare says why
        return {}
    return {k: int(stored[k]) for k in ('pretrain_iterations', 'metatrain_iterations') if k in stored}


def restore_sinusoid(exp_dir):
    """(main.Experiment, iterations trained) of the sinusoid run in `exp_dir`, its latest checkpoint restored.

    Built by main.prepare in test mode (meta batch 1, no XLA), as `main.py --train=False` would, with the
    iteration counts of the checkpoint's record when it has one (pretrained or meta-trained: the
    folder name does not tell them apart).
    """
    import main
    config = config_from_exp_dir(exp_dir, datasource='sinusoid', train=False, xla=False, seed=0)
    config = config.replace(**recorded_iterations(exp_dir))
    try:
        experiment = main.prepare(config)
    except main.UsageError as e:
        raise UsageError(str(e)) from None
    return experiment, experiment.start_itr


# ------------------------------------------------------------------------------------ adaptation
def adapted_weights(model, inputa, labela, num_steps):
    """[weights after 0, 1, ..., num_steps inner steps] on one task's (inputa [1, K, dim], labela [1, K, out]).

    Each step is w - update_lr * d loss / d w with the model's own `forward` and `loss_func`
    (the inner update of MAML.task_metalearn); every dict has the model's weight keys with a
    leading task axis of 1, as `model.forward` takes them. Needed because the model's
    evaluation returns losses and outputs on its inputs, not the adapted weights themselves,
    which the fits figure evaluates on a dense grid.
    """
    tf = tensorflow()
    fast = {k: tf.convert_to_tensor(v)[None] for k, v in model.weights.items()}
    weights = [fast]
    for _ in range(num_steps):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(list(fast.values()))
            loss = tf.reduce_sum(model.loss_func(model.forward(inputa, fast), labela))
        grads = tape.gradient(loss, fast)
        fast = {k: w - model.update_lr * grads[k] for k, w in fast.items()}
        weights.append(fast)
    return weights


def predict(model, weights, x):
    """Predictions [len(x)] of the model with `weights` (one task) at the points `x`."""
    tf = tensorflow()
    inp = tf.constant(np.asarray(x, np.float32).reshape(1, -1, 1))
    return model.forward(inp, weights).numpy()[0, :, 0]


def sine_task(seed, k):
    """(amplitude, phase, x [K], y [K]) of one test sinusoid: the first task and first K points the
    sinusoid DataGenerator draws after seeding with `seed` (for every K the same amplitude and
    phase, and the K=5 points are the first five of the K=10 points)."""
    import data_generator as data_lib
    dg = data_lib.DataGenerator(2 * k, 1, Config(datasource='sinusoid', update_batch_size=k, seed=seed))
    x, y, amp, phase = dg.generate(train=False)
    return float(amp[0]), float(phase[0]), x[0, :k, 0], y[0, :k, 0]


def fit_curves(model, x, y, steps=FIT_STEPS):
    """{0: pre-update, j: after j inner steps for j in `steps`} predictions of `model` on GRID,
    adapted on the points (x, y) at the model's update_lr."""
    tf = tensorflow()
    inputa = tf.constant(np.asarray(x, np.float32).reshape(1, -1, 1))
    labela = tf.constant(np.asarray(y, np.float32).reshape(1, -1, 1))
    weights = adapted_weights(model, inputa, labela, max(steps))
    return {j: predict(model, weights[j], GRID) for j in (0,) + tuple(steps)}


# ------------------------------------------------------------------------------------ results
def read_test_results(exp_dir):
    """{(K, stepsize string): {'mean', 'std', 'ci95': arrays [T+1], 'n_steps': T, 'path'}} of a run's tests.

    From `test_ubs<K>_stepsize<lr>.csv` (header update0..updateT, rows mean, std, ci95), or
    from the `.pkl` ({'mses': [600, T+1]}) where there is no CSV, with main.test's formulas.
    """
    found = {}
    for path in sorted(glob.glob(os.path.join(exp_dir, 'test_ubs*_stepsize*.*'))):
        m = TEST_FILE.match(os.path.basename(path))
        if not m:
            continue
        key = (int(m.group(1)), m.group(2))
        if m.group(3) == 'pkl' and os.path.exists(path[:-4] + '.csv'):
            continue
        try:
            if m.group(3) == 'csv':
                with open(path, newline='') as f:
                    rows = list(csv.reader(f))
                header, values = rows[0], np.array(rows[1:4], np.float64)
                if len(rows) != 4 or values.shape != (3, len(header)):
                    raise ValueError(f'{len(rows)} rows')
                mean, std, ci95 = values
            else:
                with open(path, 'rb') as f:
                    rows = np.asarray(pickle.load(f)['mses'])
                mean, std = np.mean(rows, 0), np.std(rows, 0)     # main.test's expressions, same dtype
                ci95 = 1.96 * std / np.sqrt(len(rows))
        except (OSError, ValueError, KeyError, IndexError, pickle.UnpicklingError) as e:
            raise UsageError(f'cannot read {path} ({e}); run the test again (main.py --train=False)') from None
        found[key] = dict(mean=mean, std=std, ci95=ci95, n_steps=len(mean) - 1, path=path)
    return found


# ------------------------------------------------------------------------------------ events
def event_files(path):
    """The TensorBoard event files of `path` (a file, or a folder's `events.out.tfevents.*`), oldest first."""
    if os.path.isfile(path):
        return [path]
    return sorted(glob.glob(os.path.join(path, 'events.out.tfevents.*')))


def read_scalars(path):
    """{tag: (steps int64 [n], values float64 [n])} of every scalar in the event files of `path`, by step.

    Reads TF2 tensor summaries (as main.py writes them) and TF1 `simple_value`s (the original's
    files) with tf.data + the Event proto, so tensorboard is not needed. A step written twice
    (a resumed run redoes the iterations after its last checkpoint) keeps the later value; a
    truncated last record (a run still writing) ends that file's reading.
    """
    tf = tensorflow()
    scalars = collections.defaultdict(dict)
    for name in event_files(path):
        records = iter(tf.data.TFRecordDataset(name))
        while True:
            try:
                record = next(records)
            except (StopIteration, tf.errors.DataLossError):
                break
            event = tf.compat.v1.Event.FromString(record.numpy())
            if event.WhichOneof('what') != 'summary':
                continue
            for value in event.summary.value:
                kind = value.WhichOneof('value')
                if kind == 'simple_value':
                    scalars[value.tag][event.step] = float(value.simple_value)
                elif kind == 'tensor' and not value.tensor.tensor_shape.dim:
                    scalars[value.tag][event.step] = float(tf.make_ndarray(value.tensor))
    return {tag: (np.array(sorted(by_step), np.int64), np.array([by_step[s] for s in sorted(by_step)]))
            for tag, by_step in scalars.items()}


def post_steps(scalars, prefix, what):
    """Sorted inner-step numbers j of the tags `<prefix>Post-update_<what>__step_<j>` in `scalars`."""
    pattern = re.compile(re.escape(f'{prefix}Post-update_{what}__step_') + r'(\d+)$')
    return sorted(int(m.group(1)) for m in map(pattern.match, scalars) if m)


def running_mean(values, window):
    """Trailing mean of the finite ones among `values` over `window` points (fewer at the start;
    nan where a window holds none): same length as `values`."""
    v = np.asarray(values, np.float64)
    finite = np.isfinite(v)
    sums = np.cumsum(np.insert(np.where(finite, v, 0.0), 0, 0.0))
    counts = np.cumsum(np.insert(finite, 0, False))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    with np.errstate(invalid='ignore', divide='ignore'):
        return (sums[idx] - sums[lo]) / (counts[idx] - counts[lo])


# ------------------------------------------------------------------------------------ figures
def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _save(fig, out):
    """Writes `fig` as PNG to `out` (through a temporary file, renamed), closes it, returns `out`."""
    plt = _pyplot()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = f'{out}.tmp{os.getpid()}.png'
    try:
        fig.savefig(tmp, dpi=110, format='png')
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return out


def fits_figure(rows, seed=0):
    """The Figure 2 figure: one row per (K, [(label, exp_dir), ...]) of `rows`, one panel per run.

    Each panel: the true sinusoid, its first K points, and the run's predictions before and
    after 1 and 10 inner steps on them (4 lines and 1 scatter); every row shows the same
    sinusoid (see sine_task). Returns the matplotlib Figure.
    """
    plt = _pyplot()
    restored = {}
    for _, models in rows:
        for _, exp_dir in models:
            config = config_from_exp_dir(exp_dir)
            if config.baseline == 'oracle':
                raise UsageError(f'{exp_dir} is an oracle run (its inputs include amplitude and phase); '
                                 f'fits takes MAML and pretrained runs')
            if exp_dir not in restored:
                experiment, iterations = restore_sinusoid(exp_dir)
                restored[exp_dir] = (experiment.model, iterations, config.update_batch_size)
    cols = max(len(models) for _, models in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(4.8 * cols, 3.4 * len(rows)), squeeze=False, sharex=True)
    styles = {0: dict(color='tab:green', ls=':', label='pre-update'),
              1: dict(color='tab:cyan', ls='--', label='1 grad step'),
              10: dict(color='tab:blue', ls='-', label='10 grad steps')}
    for row, (k, models) in enumerate(rows):
        amp, phase, x, y = sine_task(seed, k)
        for col, (label, exp_dir) in enumerate(models):
            model, iterations, trained_k = restored[exp_dir]
            ax = axes[row, col]
            ax.plot(GRID, amp * np.sin(GRID - phase), color='tab:red', lw=2, label='ground truth')
            for j, pred in fit_curves(model, x, y).items():
                ax.plot(GRID, pred, **styles.get(j, dict(label=f'{j} grad steps')))
            ax.scatter(x, y, marker='^', color='purple', s=50, zorder=3, label='used for grad')
            trained = '' if trained_k == k else f', trained K={trained_k}'
            ax.set_title(f'{label}, K={k} ({iterations} it.{trained}, α={model.update_lr:g})', fontsize=10)
            ax.set_xlim(-5, 5)
            if row == len(rows) - 1:
                ax.set_xlabel('x')
        for col in range(len(models), cols):
            axes[row, col].set_visible(False)
    axes[0, 0].legend(fontsize=8, loc='lower left')
    fig.tight_layout()
    return fig


def off_scale_from(values, top):
    """The index of the first of `values` above `top` or not finite (e.g. a diverging task), or None."""
    values = np.asarray(values)
    bad = np.flatnonzero(~np.isfinite(values) | (values > top))
    return int(bad[0]) if bad.size else None


def mse_panels(runs, oracle=None):
    """[(K, runs, oracle)]: one mse_figure panel for every K that one of `runs` [(label, exp_dir)] was tested with."""
    ks = sorted({k for _, exp_dir in runs for k, _ in read_test_results(exp_dir)})
    return [(k, runs, oracle) for k in ks]


def mse_figure(panels, accuracy=False):
    """The Figure 3 figure: test result vs number of inner steps, mean and 95% CI band, one panel per K.

    `panels`: [(K, [(label, exp_dir)], oracle exp_dir or None)]; each panel draws the runs'
    results of tests with that K and the oracle's pre-update result as a horizontal dashed line
    (the oracle is given amplitude and phase: it needs no adaptation). `accuracy`: the results
    are accuracies (classification). For MSE the y axis ends at 1.15 x the highest pre-update
    mean + CI: one diverging task (possible at a fixed step size) makes a mean huge or inf from
    some step on, and such a curve's label says from which step it is off the scale. Returns
    the matplotlib Figure. Raises UsageError when a run has no test results with the panel's K.
    Titles: the dataset, N-way K-shot and split of the panel's first run (describe, test_split);
    accuracies are drawn in %.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (k, runs, oracle) in zip(axes[0], panels):
        curves = []
        for label, exp_dir in runs:
            found = {key: r for key, r in read_test_results(exp_dir).items() if key[0] == k}
            if not found:
                raise UsageError(f'no test results with K={k} (test_ubs{k}_stepsize<lr>.csv) in {exp_dir}; '
                                 f'run main.py with the same flags and --train=False first')
            curves += [(label if len(found) == 1 else f'{label}, α={key[1]}', r) for key, r in sorted(found.items())]
        top = None if accuracy else 1.15 * max(r['mean'][0] + r['ci95'][0] for _, r in curves)
        scale = 100.0 if accuracy else 1.0
        for name, r in curves:
            steps = np.arange(r['n_steps'] + 1)
            j = None if accuracy else off_scale_from(r['mean'], top)
            if j is not None:
                name += f' (off scale from step {j})'
            mean, ci95 = scale * r['mean'], scale * r['ci95']
            line, = ax.plot(steps, mean, marker='o', ms=3, label=name)
            with np.errstate(invalid='ignore'):     # inf - inf of a diverged step: no band there
                ax.fill_between(steps, mean - ci95, mean + ci95, color=line.get_color(), alpha=0.2)
        for key, r in sorted(read_test_results(oracle).items() if oracle else []):
            if key[0] == k:
                m, c = r['mean'][0], r['ci95'][0]
                ax.axhline(m, color='k', ls='--', label='oracle')
                ax.axhspan(m - c, m + c, color='k', alpha=0.1)
        if top is not None:
            ax.set_ylim(0, top)
        if accuracy:
            first = runs[0][1]
            ax.set_title(f'{describe(first)}, {test_split(first)}:\ntest mean and 95% confidence interval', fontsize=10)
        else:
            ax.set_title(f'sinusoid, K={k} test tasks:\ntest mean and 95% confidence interval', fontsize=10)
        ax.set_xlabel('number of gradient steps')
        ax.set_ylabel('accuracy (%)' if accuracy else 'mean squared error')
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def curves_figure(exp_dir, title=None, smooth=10):
    """Learning curves of one run: a loss panel (log scale) and, for classification, an accuracy panel.

    The title names the dataset and N-way K-shot (describe) and the tasks; accuracies in %.
    Lines: pre-update, post-update after step 1 and after the last logged step, metatrain_ solid
    and metaval_ (when logged) dashed, each the running mean over `smooth` summary points over
    its raw values (faint, unlabelled). The loss axis ends at LOSS_TOP x the highest pre-update
    loss: adapting a pretrained or oracle model can diverge (inf), and such a line's label says
    from which iteration it leaves the axis. Returns the matplotlib Figure. Raises UsageError
    when the folder has no event files.
    """
    plt = _pyplot()
    if not event_files(exp_dir):
        raise UsageError(f'no TensorBoard event files in {exp_dir}; pass a run folder trained with --log=True')
    scalars = read_scalars(exp_dir)
    panels = [w for w in ('loss', 'accuracy') if f'metatrain_Pre-update_{w}' in scalars]
    if not panels:
        raise UsageError(f'no metatrain_ summaries in the event files of {exp_dir}; pass a folder main.py trained')
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.2), squeeze=False)
    last = 0
    for ax, what in zip(axes[0], panels):
        top = None
        if what == 'loss':
            pre = np.concatenate([scalars[t][1] for t in ('metatrain_Pre-update_loss', 'metaval_Pre-update_loss')
                                  if t in scalars])
            top = LOSS_TOP * np.max(pre[np.isfinite(pre)], initial=0.0) or None
        for prefix, ls in (('metatrain_', '-'), ('metaval_', '--')):
            steps = post_steps(scalars, prefix, what)
            tags = [(f'{prefix}Pre-update_{what}', 'pre-update', 'tab:green')]
            tags += [(f'{prefix}Post-update_{what}__step_{j}', f'post-update, step {j}', color)
                     for j, color in zip(sorted({steps[0], steps[-1]}) if steps else [], ('tab:cyan', 'tab:blue'))]
            for tag, name, color in tags:
                if tag not in scalars:
                    continue
                x, v = scalars[tag]
                v = 100.0 * v if what == 'accuracy' else v
                last = max(last, int(x[-1]))
                if top is not None and off_scale_from(v, top) is not None:
                    name += f' (off scale from iteration {x[off_scale_from(v, top)]})'
                ax.plot(x, v, color=color, ls=ls, lw=0.6, alpha=0.25)
                ax.plot(x, running_mean(v, max(1, min(smooth, len(v) // 5))), color=color, ls=ls,
                        label=f'{prefix.rstrip("_")} {name}')
        ax.set_xlabel('iteration')
        ax.set_ylabel('accuracy (%)' if what == 'accuracy' else what)
        if what == 'loss':
            ax.set_yscale('log')
            if top is not None:
                ax.set_ylim(top=top)
        ax.legend(fontsize=7)
    exp_dir = os.path.normpath(exp_dir)
    title = title or os.path.basename(os.path.dirname(exp_dir)) or exp_dir
    tasks = 'meta-training (solid) and meta-validation (dashed) tasks' if 'accuracy' in panels else \
        'meta-training tasks'
    fig.suptitle(f'{title}: {describe(exp_dir)}, {tasks}\n{os.path.basename(exp_dir)}, summaries up to iteration '
                 f'{last}', fontsize=10)
    fig.tight_layout()
    return fig


def compare_figure(runs, smooth=10):
    """Several runs' learning curves in one figure [(label, exp_dir)]: a panel per quantity the runs logged
    (accuracy in % for classification, else loss on a log scale), a colour per run, its post-update value after
    the inner steps it trained with (the folder name's numstep; else the last logged step) on meta-training
    tasks (solid) and meta-validation tasks (dashed, when logged),
    each the running mean over `smooth` summary points. For learners side by side from the same seed. Raises
    UsageError for a folder without metatrain_ summaries."""
    plt = _pyplot()
    data = []
    for label, exp_dir in runs:
        scalars = read_scalars(exp_dir) if event_files(exp_dir) else {}
        if 'metatrain_Pre-update_loss' not in scalars:
            raise UsageError(f'no metatrain_ summaries in {exp_dir}; pass run folders main.py trained with --log=True')
        data.append((label, exp_dir, scalars))
    what = 'accuracy' if all('metatrain_Pre-update_accuracy' in s for _, _, s in data) else 'loss'
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    for (label, exp_dir, scalars), color in zip(data, plt.rcParams['axes.prop_cycle'].by_key()['color'] * 4):
        for prefix, ls, split in (('metatrain_', '-', 'training'), ('metaval_', '--', 'validation')):
            steps = post_steps(scalars, prefix, what)
            if not steps:
                continue
            trained = re.search(r'\.numstep(\d+)', os.path.basename(os.path.normpath(exp_dir)))
            step = int(trained.group(1)) if trained and int(trained.group(1)) in steps else steps[-1]
            x, v = scalars[f'{prefix}Post-update_{what}__step_{step}']
            v = 100.0 * v if what == 'accuracy' else v
            ax.plot(x, running_mean(v, max(1, min(smooth, len(v) // 5))), color=color, ls=ls,
                    label=f'{label}, {split} (step {step})')
    ax.set_xlabel('iteration')
    ax.set_ylabel('post-update accuracy (%)' if what == 'accuracy' else 'post-update loss')
    if what == 'loss':
        ax.set_yscale('log')
    ax.legend(fontsize=7)
    ax.set_title(f'{describe(data[0][1])}: post-update {what}, meta-training (solid) and meta-validation (dashed) '
                 f'tasks,\nrunning mean over {smooth} summary points', fontsize=9)
    fig.tight_layout()
    return fig


def fits(maml, pretrained, out, ks=(5, 10), seed=0):
    """Writes the fits figure of the runs `maml` and `pretrained` (a row per K in `ks`) to `out`; returns `out`."""
    return _save(fits_figure([(k, [('MAML', maml), ('pretrained', pretrained)]) for k in ks], seed), out)


def mse(runs, out, oracle=None, accuracy=False):
    """Writes the test-result-vs-steps figure of `runs` [(label, exp_dir)] (a panel per K tested) to `out`."""
    if not any(read_test_results(exp_dir) for _, exp_dir in runs):
        raise UsageError(f'no test results (test_ubs<K>_stepsize<lr>.csv) in {", ".join(d for _, d in runs)}; '
                         f'run main.py with the same flags and --train=False first')
    return _save(mse_figure(mse_panels(runs, oracle), accuracy), out)


def curves(exp_dir, out, title=None, smooth=10):
    """Writes the learning curves of the run in `exp_dir` to `out`; returns `out`."""
    return _save(curves_figure(exp_dir, title, smooth), out)


def compare(runs, out, smooth=10):
    """Writes the curves of `runs` [(label, exp_dir)] in one figure (compare_figure) to `out`; returns `out`."""
    return _save(compare_figure(runs, smooth), out)


# ------------------------------------------------------------------------------------ all
def is_run_dir(path):
    """Whether `path` is a main.py run folder: it has event files, test results or a checkpoint."""
    return bool(event_files(path) or glob.glob(os.path.join(path, 'test_ubs*_stepsize*.*'))
                or os.path.isfile(os.path.join(path, 'checkpoint')))


def find_runs(logs):
    """{name: exp_dir} of the run folders (is_run_dir) under `logs`, in the layouts of the module doc.

    A run folder's name is the path of the folders above it inside `logs` with seed<s> as
    `_seed<s>` (`<experiment>`, `<experiment>_seed<s>`), or its own name (exp_string) when it lies
    directly in `logs` or is `logs`. Several run folders under one name are each named
    `<name>_<exp_string>`. Sub-folders of a run folder, and folders deeper than 3 levels, are not
    searched.
    """
    found = collections.defaultdict(list)
    for root, dirs, _ in os.walk(logs):
        rel = os.path.relpath(root, logs)
        parts = [] if rel == '.' else rel.split(os.sep)
        if is_run_dir(root):
            dirs[:] = []
            name = '_'.join(parts[:-1]) if len(parts) > 1 else os.path.basename(os.path.normpath(root))
            found[name].append(root)
        elif len(parts) >= 3:
            dirs[:] = []
        dirs.sort()
    runs = {}
    for name, dirs in sorted(found.items()):
        for d in sorted(dirs):
            runs[name if len(dirs) == 1 else f'{name}_{os.path.basename(d)}'] = d
    return runs


def plot_all(logs, out_dir=None, seed=0, smooth=10):
    """Every figure for the runs under `logs` into `out_dir` (default `<logs>/figures`; see the module doc);
    returns the files written.

    All figures are drawn before the first is saved, so a run that cannot be plotted stops the
    command with nothing written.
    """
    if not os.path.isdir(logs):
        raise UsageError(f'--logs={logs} is not a folder; pass the folder holding <experiment>/<exp_string>/')
    out_dir = os.path.join(logs, 'figures') if out_dir is None else out_dir
    runs = find_runs(logs)
    if not runs:
        raise UsageError(f'no runs under {logs} (expected {logs}/<experiment>/<exp_string>/ or {logs}/<exp_string>/ '
                         f'with event files, test results or a checkpoint); train with main.py --logdir={logs} first')
    figures = []          # (file name, Figure)
    groups = collections.defaultdict(lambda: collections.defaultdict(list))   # K -> kind -> [(label, exp_dir)]
    tested = collections.defaultdict(list)                                     # experiment -> [(label, exp_dir)]
    for name, exp_dir in runs.items():
        m = SINE_GROUP.match(name)
        if m:
            label = {'maml': 'MAML', 'pretrained': 'pretrained', 'oracle': 'oracle'}[m.group(2)]
            groups[int(m.group(1))][m.group(2)].append(
                (label if m.group(3) is None else f'{label}, seed {m.group(3)}', exp_dir))
        if event_files(exp_dir):
            try:
                figures.append((f'curves_{name}.png', curves_figure(exp_dir, name, smooth)))
            except UsageError as e:   # a run still training has not flushed its first summaries
                if 'no metatrain_ summaries' not in str(e):
                    raise
                print(f'plots.py: skipped the curves of {name}: no summaries yet (still training?)', file=sys.stderr)
        if not m and read_test_results(exp_dir):
            s = SEED_NAME.match(name)
            tested[s.group(1) if s else name].append((f'seed {s.group(2)}' if s else name, exp_dir))
    for name, labelled in tested.items():
        figures.append((f'{name}_test.png', mse_figure(mse_panels(labelled), accuracy=True)))
    models = (('maml', 'MAML'), ('pretrained', 'pretrained'))
    rows = [(k, [g[key][0] for key, _ in models]) for k, g in sorted(groups.items())
            if g['maml'] and g['pretrained']]
    if rows:
        figures.append(('sine_fits.png', fits_figure(rows, seed)))

    def with_k(key, k):
        return [(label, d) for label, d in groups[k][key] if any(kk == k for kk, _ in read_test_results(d))]
    panels = [(k, [run for key, _ in models for run in with_k(key, k)],
               with_k('oracle', k)[0][1] if with_k('oracle', k) else None) for k in sorted(groups)]
    panels = [p for p in panels if p[1]]
    if panels:
        figures.append(('sine_mse.png', mse_figure(panels)))
    return [_save(fig, os.path.join(out_dir, name)) for name, fig in figures]


# ------------------------------------------------------------------------------------ CLI
class _Parser(argparse.ArgumentParser):
    def error(self, message):
        fail(f'{message}; see python scripts/plots.py --help')


def _labelled(value):
    label, sep, path = value.partition('=')
    if not sep:
        return os.path.basename(os.path.dirname(os.path.normpath(value))) or value, value
    return label, path


def parse_args(argv):
    p = _Parser(prog=PROG, description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog=__doc__[__doc__.index('\n') + 1:])
    p.add_argument('command', nargs='?', default='all', choices=('fits', 'mse', 'curves', 'all'))
    p.add_argument('--logs', default='logs', help='all: a main.py --logdir, or reproduce.py\'s --logdir_root')
    p.add_argument('--out', help='output PNG (fits, mse, curves) or folder (all; default <logs>/figures)')
    p.add_argument('--maml', help='fits: the MAML run folder <logdir>/<exp_string>')
    p.add_argument('--pretrained', help='fits: the pretrained-baseline run folder')
    p.add_argument('--run', action='append', default=[],
                   help='mse: [LABEL=]EXP_DIR (repeat); curves: EXP_DIR, or [LABEL=]EXP_DIR repeated (one figure)')
    p.add_argument('--oracle', help='mse: the oracle run folder (optional)')
    p.add_argument('--accuracy', action='store_true', help='mse: the results are accuracies (classification)')
    p.add_argument('--k', type=int, nargs='+', default=[5, 10], help='fits: K values, one row each')
    p.add_argument('--seed', type=int, default=0, help='fits, all: seed of the test sinusoid')
    p.add_argument('--smooth', type=int, default=10, help='curves: running-mean window in summary points')
    args = p.parse_args(argv)
    if args.command != 'all' and not args.out:
        p.error(f'{args.command} needs --out FILE.png')
    if args.command == 'fits' and not (args.maml and args.pretrained):
        p.error('fits needs --maml EXP_DIR and --pretrained EXP_DIR')
    if args.command == 'mse' and not args.run:
        p.error('mse needs at least one --run [LABEL=]EXP_DIR')
    if args.command == 'curves' and not args.run:
        p.error('curves needs --run EXP_DIR (or several --run LABEL=EXP_DIR)')
    if any(k < 1 for k in args.k) or args.smooth < 1:
        p.error('--k and --smooth must be >= 1')
    for path in [args.maml, args.pretrained, args.oracle] + [_labelled(r)[1] for r in args.run]:
        if path and not os.path.isdir(path):
            p.error(f'{path} is not a folder')
    return args


def fail(message, status=2):
    """Prints `plots.py: error: <message>` as one line on stderr and exits."""
    print(f'{PROG}: error: ' + ' '.join(str(message).split()), file=sys.stderr)
    sys.exit(status)


def main(argv=None):
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == 'fits':
            written = [fits(args.maml, args.pretrained, args.out, tuple(args.k), args.seed)]
        elif args.command == 'mse':
            written = [mse([_labelled(r) for r in args.run], args.out, args.oracle, args.accuracy)]
        elif args.command == 'curves' and len(args.run) > 1:
            written = [compare([_labelled(r) for r in args.run], args.out, args.smooth)]
        elif args.command == 'curves':
            written = [curves(args.run[0], args.out, smooth=args.smooth)]
        else:
            written = plot_all(args.logs, args.out, args.seed, args.smooth)
    except UsageError as e:
        fail(e)
    for path in written:
        print(path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
