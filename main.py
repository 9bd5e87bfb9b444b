"""Entry point of maml-tf2: the original main.py (cbfinn/maml) in TensorFlow 2.

The original's flags, `train()` and `test()` with the same prints, output files and experiment
names, so its usage lines work unchanged:

    10-shot sinusoid:
        python main.py --datasource=sinusoid --logdir=logs/sine/ --metatrain_iterations=70000 --norm=None --update_batch_size=10
    10-shot sinusoid baselines (each in its own --logdir: the original named the pretrained baseline's
    experiment as MAML's, and maml-tf2 refuses to resume or test a checkpoint of another regime):
        python main.py --datasource=sinusoid --logdir=logs/sine_oracle/ --pretrain_iterations=70000 --metatrain_iterations=0 --norm=None --update_batch_size=10 --baseline=oracle
        python main.py --datasource=sinusoid --logdir=logs/sine_pretrained/ --pretrain_iterations=70000 --metatrain_iterations=0 --norm=None --update_batch_size=10
    5-way, 1-shot omniglot:
        python main.py --datasource=omniglot --metatrain_iterations=40000 --meta_batch_size=32 --update_batch_size=1 --update_lr=0.4 --num_updates=1 --logdir=logs/omniglot5way/
    20-way, 1-shot omniglot:
        python main.py --datasource=omniglot --metatrain_iterations=40000 --meta_batch_size=16 --update_batch_size=1 --num_classes=20 --update_lr=0.1 --num_updates=5 --logdir=logs/omniglot20way/
    5-way 1-shot mini imagenet:
        python main.py --datasource=miniimagenet --metatrain_iterations=60000 --meta_batch_size=4 --update_batch_size=1 --update_lr=0.01 --num_updates=5 --num_classes=5 --logdir=logs/miniimagenet1shot/ --num_filters=32 --max_pool=True
    5-way 5-shot mini imagenet:
        python main.py --datasource=miniimagenet --metatrain_iterations=60000 --meta_batch_size=4 --update_batch_size=5 --update_lr=0.01 --num_updates=5 --num_classes=5 --logdir=logs/miniimagenet5shot/ --num_filters=32 --max_pool=True

    To run evaluation, add --train=False (and --test_set=True to use the test set).

This is the only module that reads flags: they become one frozen `Config`, and the derived values
(meta batch 1 at test time, the oracle moving meta-training into pretraining) are new configs.
Everything the checks can find wrong is found before TensorFlow is imported and before anything
is written: a bad flag costs one line on stderr, `main.py: error: <what>; <how to fix>`, exit 2.
For tests, `prepare(config)` + `train(...)` / `test(...)` run the real thing in-process.

Beyond the original (issue 13):
* Each checkpoint records the regime it was trained under (`regime`: method, protocol, baseline,
  pretrain/metatrain, datasource, architecture, learner fields) and all flags; a run never resumes,
  overwrites (--resume=False) or tests a checkpoint of another regime (the pretrained baseline and
  MAML share an experiment name): one line says which fields differ and suggests a --logdir of its own.
* test() also writes `<exp_dir>/results/<val|test>_<checkpoint>_ubs<K>_stepsize<lr>.{csv,pkl,json}`
  (the json: split, checkpoint, iterations, tasks, statistics, flags, commit, date) beside the
  original's `test_ubs<K>_stepsize<lr>.{csv,pkl}`, and prints a readable table and the paths.
* Training into a folder another process trains into is refused (a flock on `<exp_dir>/.train.lock`,
  released by the OS however a run ends); a failed checkpoint write (full disk) removes what it
  half-wrote and keeps the previous checkpoint the latest.
* Exit status: 0 done; 2 `main.py: error: <what>; <how to fix>` (flags, data, folders, disk); 3 the
  same one line when training diverged (a nan/inf objective or weight; nothing non-finite is saved).
* TensorFlow's start-up lines are hidden unless --verbose; progress lines (`[maml-tf2] ...`) report
  the first (tracing / XLA compile) iteration apart, s/it and ETA, test progress and a closing summary.
"""
import csv
import dataclasses
import datetime
import errno
import fcntl
import itertools
import json
import logging
import os
import pickle
import re
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

import config as config_lib
from config import Config

NUM_TEST_POINTS = 600       # tasks in test(), "calculated for omniglot" in the original
MAX_TO_KEEP = 10            # checkpoints kept, as the original's Saver(max_to_keep=10)
TEST_SEED = 1               # the original's np.random.seed(1) in test()
CHECKPOINT_STATE = 'checkpoint'
LOCK_FILE = '.train.lock'   # in the experiment folder: held (flock) by the process training into it
RESULTS_DIR = 'results'     # in the experiment folder: one self-describing result triple per test run
PROG = 'main.py'
EXIT_USAGE = 2              # main.py: error: ... (bad flags, data, folders, disk)
EXIT_DIVERGED = 3           # main.py: error: ... (the training objective or the weights became nan/inf)
# What a checkpoint's weights mean: two runs that differ in one of these never share checkpoints
# (plus every learner field that names the experiment, see regime()).
REGIME_FIELDS = ('method', 'protocol', 'baseline', 'training', 'datasource', 'num_classes', 'conv', 'norm',
                 'num_filters', 'max_pool')

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Defines the original's flags (same names, types, defaults, help) and ours on `flag_values`.

    Defaults come from `Config()`, so they are written once.
    """
    d = Config()
    f = dict(flag_values=flag_values)
    ## Dataset/method options
    flags.DEFINE_string('datasource', d.datasource, 'sinusoid or omniglot or miniimagenet', **f)
    flags.DEFINE_integer('num_classes', d.num_classes,
                         'number of classes used in classification (e.g. 5-way classification).', **f)
    # oracle means task id is input (only suitable for sinusoid)
    flags.DEFINE_string('baseline', d.baseline, 'oracle, or None', **f)
    ## Training options
    flags.DEFINE_integer('pretrain_iterations', d.pretrain_iterations, 'number of pre-training iterations.', **f)
    flags.DEFINE_integer('metatrain_iterations', d.metatrain_iterations, 'number of metatraining iterations.', **f)
    flags.DEFINE_integer('meta_batch_size', d.meta_batch_size, 'number of tasks sampled per meta-update', **f)
    flags.DEFINE_float('meta_lr', d.meta_lr, 'the base learning rate of the generator', **f)
    flags.DEFINE_integer('update_batch_size', d.update_batch_size,
                         'number of examples used for inner gradient update (K for K-shot learning).', **f)
    flags.DEFINE_float('update_lr', d.update_lr, 'step size alpha for inner gradient update.', **f)
    flags.DEFINE_integer('num_updates', d.num_updates, 'number of inner gradient updates during training.', **f)
    ## Model options
    flags.DEFINE_string('norm', d.norm, 'batch_norm, layer_norm, or None', **f)
    flags.DEFINE_integer('num_filters', d.num_filters,
                         'number of filters for conv nets -- 32 for miniimagenet, 64 for omiglot.', **f)
    flags.DEFINE_bool('conv', d.conv, 'whether or not to use a convolutional network, only applicable in some cases',
                      **f)
    flags.DEFINE_bool('max_pool', d.max_pool, 'Whether or not to use max pooling rather than strided convolutions',
                      **f)
    flags.DEFINE_bool('stop_grad', d.stop_grad,
                      'if True, do not use second derivatives in meta-optimization (for speed)', **f)
    ## Logging, saving, and testing options
    flags.DEFINE_bool('log', d.log, 'if false, do not log summaries, for debugging code.', **f)
    flags.DEFINE_string('logdir', d.logdir, 'directory for summaries and checkpoints.', **f)
    flags.DEFINE_bool('resume', d.resume, 'resume training if there is a model available', **f)
    flags.DEFINE_bool('train', d.train, 'True to train, False to test.', **f)
    flags.DEFINE_integer('test_iter', d.test_iter, 'iteration to load model (-1 for latest model)', **f)
    flags.DEFINE_bool('test_set', d.test_set,
                      'Set to true to test on the the test set, False for the validation set.', **f)
    flags.DEFINE_integer('train_update_batch_size', d.train_update_batch_size,
                         'number of examples used for gradient update during training '
                         '(use if you want to test with a different number).', **f)
    flags.DEFINE_float('train_update_lr', d.train_update_lr,
                       'value of inner gradient step step during training. '
                       '(use if you want to test with a different value)', **f)
    ## New in maml-tf2 (none changes what an original flag means)
    flags.DEFINE_bool('xla', d.xla, 'compile the meta-train step with XLA (jit_compile)', **f)
    flags.DEFINE_integer('steps_per_execution', d.steps_per_execution, 'meta-iterations per compiled call '
                         '(one loop over pre-drawn meta-batches; same batches and weights as one call each, less '
                         'Python dispatch: e.g. 100 for the sinusoid); summaries, prints and checkpoints keep their '
                         'iterations', **f)
    flags.DEFINE_integer('seed', d.seed, 'seed of the initial weights and the task stream; '
                         '-1: unseeded, as the original', **f)
    flags.DEFINE_string('data_dir', d.data_dir, 'where the Omniglot / MiniImagenet files are '
                        '(default: ./data/omniglot, ./data/miniImagenet); see docs/DATA.md', **f)
    flags.DEFINE_integer('num_query', d.num_query, 'query (b) examples per class; -1: the original\'s '
                         'choice (K, or 15 for MiniImagenet training)', **f)
    flags.DEFINE_integer('num_train_classes', d.num_train_classes,
                         'Omniglot meta-train characters; -1: the original 1100', **f)
    flags.DEFINE_integer('num_val_classes', d.num_val_classes,
                         'Omniglot meta-validation characters; -1: the original 100', **f)
    flags.DEFINE_string('tf1_checkpoint', d.tf1_checkpoint,
                        'a checkpoint of the original TF1 code (prefix, e.g. DIR/model59000, or a directory '
                        'with a `checkpoint` file) to test (--train=False) or to continue training from', **f)
    flags.DEFINE_string('export_tf1', d.export_tf1, 'at the end, write the weights as a TF1 checkpoint with '
                        'this prefix (e.g. DIR/model59999), readable by the original code', **f)
    ## Scaling (issue 16, docs/SCALING.md): none of these changes the experiment name or what a checkpoint holds
    flags.DEFINE_integer('cpu_devices', d.cpu_devices, 'split the CPU into this many logical devices (before '
                         'TensorFlow starts), e.g. to run --distribute=mirrored without a GPU', **f)
    flags.DEFINE_string('distribute', d.distribute, 'none: one device (as always); mirrored: every meta-batch\'s '
                        'tasks (protonet / matchingnet: each episode\'s query rows; baselines: each mini-batch\'s '
                        'rows) split over the local GPUs (or --cpu_devices), gradient all-reduced once per '
                        'meta-iteration (tf.distribute.MirroredStrategy); multi_worker: the same over the processes '
                        'of TF_CONFIG on one or several machines (MultiWorkerMirroredStrategy; the chief alone writes '
                        'into --logdir)', **f)
    flags.DEFINE_bool('remat', d.remat, 'recompute each inner step\'s activations in the backward pass instead of '
                      'keeping them: peak memory grows slower with --num_updates, same meta-gradient, more compute', **f)
    flags.DEFINE_string('precision', d.precision, 'float32, bfloat16 or float16: the network\'s compute in both '
                        'loops (weights, Adam and the meta-gradient stay float32; float16 scales the losses)', **f)
    flags.DEFINE_float('loss_scale', d.loss_scale, 'with --precision=float16: the fixed factor the inner and outer '
                       'losses are multiplied by before differentiating (gradients divided by it after), so that '
                       'small gradients do not underflow float16; lower it if training diverges at once '
                       '(Omniglot conv: 1)', **f)
    flags.DEFINE_bool('tf32', d.tf32, 'let float32 products use TF32 on Ampere and newer GPUs (TensorFlow\'s '
                      'default; maml-tf2 turns it off for the original\'s float32 numbers)', **f)
    flags.DEFINE_bool('verbose', False, 'show TensorFlow\'s own start-up and info lines (hidden by default)', **f)
    ## The learners beyond MAML: one flag per Config field that carries its help text
    define = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float, str: flags.DEFINE_string}
    for field in dataclasses.fields(Config):
        if 'help' in field.metadata:
            define[type(field.default)](field.name, field.default, field.metadata['help'], **f)


define_flags()


class UsageError(Exception):
    """Something the user can fix; the message is one line: '<what is wrong>; <how to fix>'."""
    status = EXIT_USAGE


class TrainingDiverged(UsageError):
    """The training objective or the weights became nan/inf; nothing non-finite was saved. Exit status 3."""
    status = EXIT_DIVERGED


# ------------------------------------------------------------------------------------ config
def config_from_flags(flag_values=FLAGS):
    """The parsed flags as a Config. `--baseline=None` (or empty) means no baseline."""
    values = {field.name: flag_values[field.name].value for field in dataclasses.fields(Config)}
    if values['baseline'] in ('None', ''):
        values['baseline'] = None
    return Config(**values)


def explicit_flags(flag_values=FLAGS):
    """The names of the Config flags given on the command line."""
    return tuple(f.name for f in dataclasses.fields(Config) if flag_values[f.name].present)


def check_config(config, explicit=()):
    """Raises UsageError for the first flag value the original could not run with, or that makes no sense.

    `explicit`: the flags set on the command line; one that means nothing to `--method` is an error.
    """
    c = config
    if c.method not in config_lib.METHODS:
        raise UsageError(f'unknown --method={c.method!r}; use one of ' + ', '.join(config_lib.METHODS))
    if c.protocol not in config_lib.PROTOCOLS:
        raise UsageError(f'unknown --protocol={c.protocol!r}; use ' + ' or '.join(config_lib.PROTOCOLS))
    for name in explicit:
        methods = config_lib.flag_methods(name)
        if methods is not None and c.method not in methods:
            raise UsageError(f'--{name} means nothing to --method={c.method} (it is a flag of '
                             f'{", ".join(methods)}); drop --{name} or choose one of those methods')
    if c.datasource not in config_lib.DATASOURCES:
        raise UsageError(f'unknown --datasource={c.datasource!r}; use sinusoid, omniglot or miniimagenet')
    if c.method not in ('reptile',) + config_lib.INNER_LOOP and c.datasource == 'sinusoid':
        raise UsageError(f'--method={c.method} classifies images; use --datasource=omniglot or miniimagenet')
    if c.protocol == 'reptile' and (c.method != 'reptile' or c.datasource != 'omniglot'):
        raise UsageError('--protocol=reptile is openai/supervised-reptile\'s Omniglot set-up; use it with '
                         '--method=reptile --datasource=omniglot, or drop it')
    if c.fce:
        raise UsageError('--fce: full-context embeddings are not implemented; drop --fce (Matching Networks '
                         'without FCE, as the ProtoNets paper\'s comparison)')
    for name, low in (('first_order_epochs', -1), ('multi_step_loss_epochs', 1), ('iterations_per_epoch', 1),
                      ('inner_iters', 1), ('inner_batch', 1), ('eval_iters', 0), ('eval_batch', 1),
                      ('eval_samples', 1), ('batch_size', 1), ('finetune_epochs', 0), ('finetune_batch', 1),
                      ('lr_decay_every', 0), ('steps_per_execution', 1), ('cpu_devices', 1)):
        if getattr(c, name) < low:
            raise UsageError(f'--{name}={getattr(c, name)} must be >= {low}; pass e.g. its default '
                             f'{getattr(Config(), name)}')
    if c.steps_per_execution > 1 and not c.xla:
        raise UsageError(f'--steps_per_execution={c.steps_per_execution} needs --xla: TensorFlow\'s executor rounds '
                         f'the steps of a loop differently from single calls; drop --noxla or the flag')
    if c.distribute not in config_lib.DISTRIBUTE:
        raise UsageError(f'unknown --distribute={c.distribute!r}; use ' + ' or '.join(config_lib.DISTRIBUTE))
    if c.precision not in config_lib.PRECISIONS:
        raise UsageError(f'unknown --precision={c.precision!r}; use ' + ', '.join(config_lib.PRECISIONS))
    for name in ('remat', 'precision'):
        if getattr(c, name) != getattr(Config(), name) and c.method not in config_lib.INNER_LOOP:
            raise UsageError(f'--{name} applies to the inner-loop learners ({", ".join(config_lib.INNER_LOOP)}); '
                             f'drop it for --method={c.method}')
    if c.loss_scale != Config().loss_scale and c.precision != 'float16':
        raise UsageError(f'--loss_scale={c.loss_scale:g} applies to --precision=float16 only; drop it or add '
                         f'--precision=float16')
    if not 0 < c.loss_scale < float('inf'):
        raise UsageError(f'--loss_scale={c.loss_scale:g} must be a positive number; pass e.g. 1 or 128')
    if c.precision != 'float32' and c.per_step_bn_stats:
        raise UsageError(f'--per_step_bn_stats keeps float32 running statistics of the batch moments; drop it or '
                         f'--precision={c.precision}')
    if c.remat and c.per_step_bn_stats:
        raise UsageError('--per_step_bn_stats records the batch moments as the step is traced, which --remat '
                         'recomputes; drop one of the two')
    from infra import distribute as distribute_lib
    why = distribute_lib.unsupported(c)
    if why:
        raise UsageError(why)
    if (c.tf1_checkpoint or c.export_tf1) and config_lib.learner_fields(c):
        raise UsageError('--tf1_checkpoint / --export_tf1 read and write the original\'s variables only; the MAML++ '
                         'switches add others: drop the TF1 flag or the switches')
    if c.test_bn not in config_lib.TEST_BN:
        raise UsageError(f'unknown --test_bn={c.test_bn!r}; use running or episode')
    if c.norm not in config_lib.NORMS:
        raise UsageError(f'unknown --norm={c.norm!r}; use batch_norm, layer_norm or None')
    if c.baseline not in config_lib.BASELINES:
        raise UsageError(f'unknown --baseline={c.baseline!r}; use --baseline=oracle or leave it out (None)')
    if c.baseline == 'oracle' and c.datasource != 'sinusoid':
        raise UsageError('--baseline=oracle needs --datasource=sinusoid (it feeds each task\'s amplitude and '
                         'phase as inputs); drop --baseline or use --datasource=sinusoid')
    for name in ('num_classes', 'meta_batch_size', 'update_batch_size', 'num_updates', 'num_filters',
                 'meta_lr', 'update_lr'):
        if not getattr(c, name) > 0:
            raise UsageError(f'--{name}={getattr(c, name)} must be > 0; pass a positive value '
                             f'(default {getattr(Config(), name)})')
    for name in ('pretrain_iterations', 'metatrain_iterations'):
        if getattr(c, name) < 0:
            raise UsageError(f'--{name}={getattr(c, name)} must be >= 0; pass 0 or a positive number of iterations')
    for name in ('train_update_batch_size', 'train_update_lr', 'num_query', 'num_train_classes', 'num_val_classes'):
        v = getattr(c, name)
        if v != -1 and not v > 0:
            raise UsageError(f'--{name}={v} must be > 0 or -1; pass a positive value or -1 for the default')
    if c.seed < -1:
        raise UsageError(f'--seed={c.seed} must be >= 0, or -1 for unseeded; pass e.g. --seed=0')
    if c.train and c.pretrain_iterations + c.metatrain_iterations == 0:
        raise UsageError('nothing to train: --pretrain_iterations + --metatrain_iterations is 0; '
                         'give a number of iterations, or pass --train=False to test')
    if not c.logdir:
        raise UsageError('--logdir is empty; pass a directory for summaries and checkpoints')


def check_cluster(config):
    """Raises UsageError when --distribute=multi_worker cannot run with this process's TF_CONFIG (missing, not JSON,
    no cluster / task, a task outside the cluster, a meta-batch that does not split over the workers). The
    environment, not the flags: check_config does not read it."""
    from infra import distribute as distribute_lib
    why = distribute_lib.cluster_problem(config)
    if why:
        raise UsageError(why)


def run_config(config):
    """The config the model and data use, with the original main()'s derived values.

    `--baseline=oracle` moves the meta-training iterations into pretraining; testing uses a meta
    batch of 1. (`exp_string` is always taken from `config` itself, as the original named the
    experiment with the training meta batch size.)
    """
    if config.baseline == 'oracle':
        config = config.replace(pretrain_iterations=config.pretrain_iterations + config.metatrain_iterations,
                                metatrain_iterations=0)
    if not config.train:
        config = config.replace(meta_batch_size=1)
    return config


def _check_writable_dir(path, what):
    """Raises UsageError unless `path` is, or could be created as, a writable directory. Creates nothing.

    `what` names the flag the path comes from in the message, e.g. '--logdir=logs'.
    """
    p = os.path.abspath(path)
    while not os.path.lexists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    if not os.path.isdir(p):
        raise UsageError(f'{what} cannot be used: {p} is not a directory; choose another directory')
    if not os.access(p, os.W_OK | os.X_OK):
        raise UsageError(f'{what} is not writable ({p} is read-only for this user); choose a writable directory')


# ------------------------------------------------------------------------------------ checkpoints
def checkpoint_path(directory, itr):
    """The original's checkpoint prefix: `<directory>/model<itr>`."""
    return os.path.join(directory, 'model' + str(itr))


def checkpoint_exists(prefix):
    return os.path.isfile(prefix + '.index')


def _read_state(directory):
    """(latest prefix or None, [all kept prefixes]) from the `checkpoint` state file, as absolute paths."""
    path = os.path.join(directory, CHECKPOINT_STATE)
    latest, kept = None, []
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None, []
    for key, value in re.findall(r'^\s*(\w+)\s*:\s*"(.*)"\s*$', text, re.M):
        value = value if os.path.isabs(value) else os.path.join(directory, value)
        if key == 'model_checkpoint_path':
            latest = value
        elif key == 'all_model_checkpoint_paths':
            kept.append(value)
    return latest, kept


def latest_checkpoint(directory):
    """What `tf.train.latest_checkpoint(directory)` returns (None if none), without importing TF."""
    latest, _ = _read_state(directory)
    return latest if latest and checkpoint_exists(latest) else None


def regime(config):
    """{field: value}: what the weights a run trains mean, stored with each of its checkpoints.

    REGIME_FIELDS (`training`: 'pretrain', 'metatrain' or 'pretrain+metatrain', as `run_config` splits the
    iterations; `conv`: None for the sinusoid, whose network ignores it) and every learner field that
    names the experiment. The original's experiment name leaves some of these out (the pretrained
    baseline and MAML share `...nonorm`), so a resumed or tested checkpoint is compared with this.
    """
    rc = run_config(config)
    training = ('pretrain' if rc.metatrain_iterations == 0 else
                'pretrain+metatrain' if rc.pretrain_iterations else 'metatrain')
    values = {name: getattr(config, name) for name in REGIME_FIELDS if name != 'training'}
    values['training'] = training
    if config.datasource == 'sinusoid':
        values['conv'] = None
    values.update(config_lib.learner_fields(config))
    return values


def regime_differences(stored, current):
    """[(field, stored value, current value)] where two regime() dicts differ (a missing learner field is
    at its default)."""
    default = Config()
    out = []
    for name in list(current) + [n for n in stored if n not in current]:
        fallback = getattr(default, name, None)
        a, b = stored.get(name, fallback), current.get(name, fallback)
        if a != b:
            out.append((name, a, b))
    return out


def read_record(prefix):
    """The record a maml-tf2 checkpoint was saved with ({'regime': ..., 'config': ...}), or None for a
    checkpoint written before records existed, or an unreadable one (restoring it then says why)."""
    import tensorflow as tf
    try:
        reader = tf.train.load_checkpoint(prefix)
        key = 'record/.ATTRIBUTES/VARIABLE_VALUE'
        return json.loads(reader.get_tensor(key).decode()) if reader.has_tensor(key) else None
    except Exception:   # TF raises several kinds for unreadable files
        return None


def regime_flags(name):
    """The flags that decide the regime field `name`."""
    return ('pretrain_iterations', 'metatrain_iterations', 'baseline') if name == 'training' else (name,)


def check_regime(config, prefix, purpose, explicit=None):
    """Raises UsageError if the checkpoint `prefix` was trained under another regime than `config`'s.

    `purpose`: 'resume' (continue training it), 'overwrite' (--resume=False would overwrite it) or
    'test'. `explicit` (flags given): only the fields these decide are compared (testing needs no
    iteration counts, so flags left out mean "as the checkpoint"); None: all. Returns the stored
    record (None for a checkpoint without one, which is accepted).
    """
    record = read_record(prefix)
    if record is None:
        return None
    diff = regime_differences(record.get('regime', {}), regime(config))
    if explicit is not None:
        diff = [d for d in diff if set(regime_flags(d[0])) & set(explicit)]
    if not diff:
        return record
    was = ', '.join(f'{n}={a}' for n, a, _ in diff)
    now = ', '.join(f'{n}={b}' for n, _, b in diff)
    own = os.path.join(config.logdir, '_'.join(str(b) for _, _, b in diff).replace('+', '_'))
    if purpose == 'test':
        raise UsageError(f'{prefix} was trained with {was}, but these flags say {now}; pass the flags it was '
                         f'trained with, or point --logdir at the run you mean to test')
    action = 'resuming it would mix the two' if purpose == 'resume' else '--resume=False would overwrite its checkpoints'
    raise UsageError(f'{prefix} was trained with {was}, this run has {now} ({action}; the experiment name does not '
                     f'tell them apart); give this run a --logdir of its own, e.g. --logdir={own}')


def _atomic_write(path, write, binary=False):
    """Writes a file through `write(f)` into a temporary file, then renames it over `path`."""
    tmp = f'{path}.tmp{os.getpid()}'
    try:
        with open(tmp, 'wb' if binary else 'w', **({} if binary else {'newline': ''})) as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class Checkpointer:
    """`model<itr>` checkpoints in one directory, holding everything a resumed run needs.

    Each holds the learner's `checkpoint_items()` (MAML: the weights, the norm weights, both Adam optimizers
    with slots m, v and beta powers),
    `iteration` (the number of iterations done: a resumed run continues there, it never parses a
    file name), `data_state` (json of the data generator's random state) and `record` (json: the
    run's `regime` and all its flags, see check_regime). A save writes under
    a temporary name, renames the files into place (index last) and only then rewrites the
    `checkpoint` state file (itself atomically), so a crash never leaves "latest" pointing at a
    broken checkpoint. The last MAX_TO_KEEP stay, as the original's Saver.
    """

    def __init__(self, model, data_generator, directory, max_to_keep=MAX_TO_KEEP, record=None):
        import tensorflow as tf
        self.directory, self.max_to_keep = directory, max_to_keep
        self.data_generator = data_generator
        self.iteration = tf.Variable(0, dtype=tf.int64, trainable=False, name='iteration')
        self.data_state = tf.Variable('', dtype=tf.string, trainable=False, name='data_state')
        self.record = tf.Variable(json.dumps(record or {}), dtype=tf.string, trainable=False, name='record')
        self.items = dict(model.checkpoint_items(), iteration=self.iteration, data_state=self.data_state)
        self.checkpoint = tf.train.Checkpoint(**self.items, record=self.record)
        self.kept = []              # prefixes listed in the state file, oldest first

    def restore(self, prefix, restore_data=True):
        """Loads `prefix`; returns the number of iterations done. `restore_data`: also the data RNG."""
        import tensorflow as tf
        # a checkpoint written before records existed has none to match
        checkpoint = self.checkpoint if read_record(prefix) is not None else tf.train.Checkpoint(**self.items)
        record = self.record.numpy()
        try:
            checkpoint.read(prefix).assert_existing_objects_matched()
        except Exception as e:  # TF raises several kinds for unreadable or mismatched files
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UsageError(f'cannot restore checkpoint {prefix} ({first}); it is damaged or from other flags: '
                             f'train again, or pick another with --test_iter') from None
        self.record.assign(record)  # saves record this run's flags, not the loaded ones
        state = self.data_state.numpy().decode()
        if restore_data and state:
            self.data_generator.set_state(json.loads(state))
        self.kept = _read_state(self.directory)[1]
        return int(self.iteration.numpy())

    def nonfinite(self):
        """Names of the checkpointed float variables holding a nan or inf (empty: all finite)."""
        import tensorflow as tf
        bad = []
        for obj in tf.train.TrackableView(self.checkpoint).descendants():
            if isinstance(obj, tf.Variable) and obj.dtype.is_floating and not np.all(np.isfinite(obj.numpy())):
                bad.append(obj.name.split(':')[0])
        return bad

    def save(self, itr, iterations_done):
        """Writes `model<itr>` with `iterations_done`; returns its prefix.

        Raises UsageError if the files cannot be written (a full disk, say): what was half-written is
        removed and the previous checkpoint stays the latest, intact.
        """
        import tensorflow as tf
        prefix = checkpoint_path(self.directory, itr)
        for name in os.listdir(self.directory):     # left by a run killed while saving
            if re.match(r'\.tmp\d+_model\d+\.', name):
                os.remove(os.path.join(self.directory, name))
        tmp = os.path.join(self.directory, f'.tmp{os.getpid()}_model{itr}')
        self.iteration.assign(iterations_done)
        self.data_state.assign(json.dumps(self.data_generator.get_state()))
        previous = self.kept[-1] if self.kept else None
        try:
            self.checkpoint.write(tmp)
            written = [n for n in os.listdir(self.directory) if n.startswith(os.path.basename(tmp) + '.')]
            for name in sorted(written, key=lambda n: n.endswith('.index')):   # data first, index last
                os.replace(os.path.join(self.directory, name), prefix + name[len(os.path.basename(tmp)):])
            kept = [p for p in self.kept if p != prefix] + [prefix]
            self._write_state(kept[-self.max_to_keep:])
        except (OSError, tf.errors.OpError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).strip().split('\n')[0]
            for name in os.listdir(self.directory):
                if name.startswith((os.path.basename(tmp) + '.', os.path.basename(prefix) + '.')):
                    try:
                        os.remove(os.path.join(self.directory, name))
                    except OSError:
                        pass
            kept_msg = (f'{previous} is still the latest checkpoint, intact; free space (or fix the folder) and run '
                        f'again with the same flags to resume from it') if previous else \
                'no earlier checkpoint of this run exists; free space (or fix the folder) and run again'
            raise UsageError(f'cannot save checkpoint {prefix} ({reason}); {kept_msg}') from None
        dropped, self.kept = kept[:-self.max_to_keep], kept[-self.max_to_keep:]
        for old in dropped:
            for name in os.listdir(self.directory):
                if name.startswith(os.path.basename(old) + '.'):
                    os.remove(os.path.join(self.directory, name))
        return prefix

    def _write_state(self, kept):
        def rel(p):
            return os.path.relpath(p, self.directory) if os.path.dirname(p) == self.directory else p
        lines = [f'model_checkpoint_path: "{rel(kept[-1])}"']
        lines += [f'all_model_checkpoint_paths: "{rel(p)}"' for p in kept]
        _atomic_write(os.path.join(self.directory, CHECKPOINT_STATE), lambda f: f.write('\n'.join(lines) + '\n'))


# ------------------------------------------------------------------------------------ TF1 checkpoints
def check_tf1_paths(config, exp_dir):
    """Returns the prefix `--tf1_checkpoint` names (None without it); checks `--export_tf1`.

    Raises UsageError, before anything is read or written, for a checkpoint that does not exist, a
    native checkpoint the flags would also load (`--test_iter`; `--resume` with one in `exp_dir`),
    and an export prefix that is a directory, unwritable, or inside the experiment directory.
    """
    from infra import tf1_checkpoint as tf1_lib
    prefix = None
    if config.tf1_checkpoint:
        try:
            prefix = tf1_lib.resolve(config.tf1_checkpoint)
        except tf1_lib.Error as e:
            raise UsageError(f'--tf1_checkpoint={config.tf1_checkpoint}: {e}') from None
        if config.test_iter > 0:
            raise UsageError(f'--test_iter={config.test_iter} picks a maml-tf2 checkpoint, --tf1_checkpoint another '
                             f'one; drop one of the two flags')
        native = latest_checkpoint(exp_dir)
        if config.train and config.resume and native:
            raise UsageError(f'--tf1_checkpoint and --resume=True, but {exp_dir} already has {native}; pass '
                             f'--resume=False to start from the TF1 checkpoint, or drop --tf1_checkpoint to resume')
    if config.export_tf1:
        what = '--export_tf1=' + config.export_tf1
        if config.export_tf1.endswith(os.sep) or os.path.isdir(config.export_tf1):
            raise UsageError(f'{what} is a directory; give a checkpoint prefix such as '
                             f'{os.path.join(config.export_tf1, "model<itr>")}')
        directory = os.path.dirname(os.path.abspath(config.export_tf1))
        if directory == os.path.abspath(exp_dir):
            raise UsageError(f'{what} is in the experiment directory, whose `checkpoint` file lists maml-tf2\'s '
                             f'checkpoints; export into another directory')
        _check_writable_dir(directory, what)
    return prefix


def load_tf1(experiment, prefix):
    """Loads the TF1 checkpoint `prefix` into the model; returns the iterations to count as done.

    When training, those are N + 1 for a file `model<N>` (the original continued at N from the
    name; it saved `model<N>` after iteration N), with fresh Adams and data stream, as the
    original's restore had; testing needs none.
    """
    from infra import tf1_checkpoint as tf1_lib
    try:
        ignored = tf1_lib.load(experiment.model, prefix)
    except tf1_lib.Error as e:
        raise UsageError(f'--tf1_checkpoint={experiment.config.tf1_checkpoint}: {e}') from None
    print('Restoring model weights from ' + prefix)
    if ignored:
        print(f'[maml-tf2] not loaded from the TF1 checkpoint (optimizer state / moving statistics, unused by the '
              f'original\'s model): {len(ignored)} variables, e.g. {ignored[0]}')
    done = tf1_lib.iterations_done(prefix) if experiment.run_config.train else 0
    if done:
        print(f'[maml-tf2] continuing training at iteration {done} (from the name {os.path.basename(prefix)}), '
              f'with fresh Adam optimizers')
    return done


# ------------------------------------------------------------------------------------ set-up
def learner_class(config):
    """The learner class that `config.method` trains and tests (config.METHODS names its module:Class);
    `--method=maml` with a MAML++ switch on is mamlpp's subclass, so that plain MAML keeps its compiled step."""
    import importlib
    if config.method == 'maml':
        from learners import mamlpp
        return mamlpp.learner_class(config)
    module, name = config_lib.METHODS[config.method].split(':')
    return getattr(importlib.import_module(module), name)


EPISODIC_TRAINING = ('reptile', 'protonet', 'matchingnet') + config_lib.INNER_LOOP
METRIC_TRAIN_QUERY = {'omniglot': 5, 'miniimagenet': 15}   # ProtoNets' query examples per class in training


def train_shots(config):
    """Support examples per class of a meta-training task: Reptile's --train_shots (its task is all support),
    else K."""
    if config.method == 'reptile' and config.train_shots > 0:
        return config.train_shots
    return config.update_batch_size


def train_samples_per_class(config):
    """Examples per class of a meta-training task where the learner's reference differs from MAML's, else None:
    Reptile trains on train_shots (+ 1 example per class for the summaries, which the step does not see);
    ProtoNets / Matching Nets on K + 5 (Omniglot) or K + 15 (MiniImagenet) query examples, or K + --num_query."""
    if config.method == 'reptile':
        return train_shots(config) + 1
    if config.method in ('protonet', 'matchingnet'):
        query = config.num_query if config.num_query > 0 else METRIC_TRAIN_QUERY[config.datasource]
        return config.update_batch_size + query
    return None


def build_learner(config, data_generator):
    """The learner of `config.method`, sized for the data generator's inputs and outputs."""
    dim_input = 3 if config.baseline == 'oracle' else data_generator.dim_input
    extra = {}
    if config.method in ('baseline', 'baseline_pp'):
        extra['num_base_classes'] = data_generator.num_train_classes_total
    try:
        return learner_class(config)(dim_input, data_generator.dim_output, config_lib.test_num_updates(config),
                                     config, **extra)
    except (ValueError, NotImplementedError) as e:   # a setting the learner cannot build
        raise UsageError(f'--method={config.method}: {e}') from None


@dataclasses.dataclass
class Experiment:
    """Everything `train` / `test` work on, as `prepare` built it."""
    config: Config              # as given: exp_string and the output file names come from it
    run_config: Config          # with the derived values (see run_config)
    exp_dir: str                # logdir/exp_string
    data_generator: object
    model: object
    checkpointer: Checkpointer
    start_itr: int              # first iteration to run (iterations done by the restored checkpoint)
    restored_from: str | None


def prepare(config, explicit=()):
    """Checks `config`, builds the data generator and the model, restores the checkpoint to resume or test
    (`--tf1_checkpoint`: that TF1 checkpoint instead of the experiment's own).

    Writes nothing. Raises UsageError (or data_generator.DataError) for anything the user can fix.
    """
    check_config(config, explicit)
    check_cluster(config)
    from infra import distribute as distribute_lib
    rc = run_config(config)
    try:   # before anything initialises TensorFlow's devices (multi_worker: main.py created it at import)
        if config.cpu_devices != 1:
            distribute_lib.split_cpu(config.cpu_devices)
        distribute_lib.set_tf32(config.tf32)
        strategy = distribute_lib.make_strategy(rc) if rc.train else None
    except distribute_lib.Error as e:
        raise UsageError(str(e)) from None
    exp_dir = os.path.join(config.logdir, config_lib.exp_string(config))
    tf1_file = check_tf1_paths(config, exp_dir)

    model_file = None
    if not tf1_file and (rc.resume or not rc.train):
        model_file = latest_checkpoint(exp_dir)
        if rc.test_iter > 0:
            model_file = checkpoint_path(exp_dir, rc.test_iter)
            if not checkpoint_exists(model_file):
                raise UsageError(f'no checkpoint {model_file} (--test_iter={rc.test_iter}); pick an iteration '
                                 f'that was saved (see {os.path.join(exp_dir, CHECKPOINT_STATE)}) or -1 for the latest')
    if not rc.train and model_file is None and not tf1_file:
        raise UsageError(f'no checkpoint to test in {exp_dir}; train first with the same flags '
                         f'(without --train=False), point --logdir at the training run, or pass --tf1_checkpoint')
    record = None
    if model_file:
        record = (check_regime(config, model_file, 'resume') if rc.train else
                  check_regime(config, model_file, 'test', explicit))
    elif rc.train and latest_checkpoint(exp_dir):    # --resume=False (or --tf1_checkpoint) over another run?
        record = check_regime(config, latest_checkpoint(exp_dir), 'overwrite')
    _check_writable_dir(exp_dir, '--logdir=' + config.logdir)

    import data_generator as data_lib
    # examples per class (per task for sinusoid) as the original chose them: 2K, or K + 15 when
    # training on MiniImagenet; K + --num_query if given
    data_generator = data_lib.DataGenerator(data_lib.num_samples_per_class(rc), rc.meta_batch_size, rc,
                                            train_samples_per_class=train_samples_per_class(rc))
    with distribute_lib.scope(strategy):
        model = build_learner(rc, data_generator)
    distribute_lib.distribute_learner(model, strategy)
    checkpointer = Checkpointer(model, data_generator, exp_dir,
                                record={'regime': regime(config), 'config': dataclasses.asdict(config)})
    experiment = Experiment(config, rc, exp_dir, data_generator, model, checkpointer, 0, model_file or tf1_file)
    if tf1_file:
        experiment.start_itr = load_tf1(experiment, tf1_file)
    elif model_file:
        print('Restoring model weights from ' + model_file)
        if record is None:
            print(f'[maml-tf2] {os.path.basename(model_file)} has no record of the flags it was trained with '
                  f'(written before maml-tf2 stored one), so they are not checked against these')
        experiment.start_itr = checkpointer.restore(model_file, restore_data=rc.train)
    if rc.train and rc.distribute == 'multi_worker':
        _check_same_start(experiment, strategy)
    return experiment


def _check_same_start(experiment, strategy):
    """Raises UsageError (on every worker alike) unless all workers restored the same iteration count: a worker
    that does not see the chief's checkpoint (a --logdir that is not on a shared filesystem) would train other
    weights and other iterations, and the all-reduces would stop matching."""
    from infra import distribute as distribute_lib
    low, high = distribute_lib.all_workers_range(strategy, experiment.start_itr)
    if low != high:
        raise UsageError(f'the workers restored different checkpoints of {experiment.exp_dir} ({low} .. {high} '
                         f'iterations done); resuming --distribute=multi_worker needs --logdir on a filesystem '
                         f'every machine shares, or --resume=False on all of them')


def _split(inputs, labels, rows_a):
    """(inputa, labela, inputb, labelb): the first `rows_a` rows of every task are a, the rest b."""
    return inputs[:, :rows_a], labels[:, :rows_a], inputs[:, rows_a:], labels[:, rows_a:]


def sinusoid_batch(data_generator, config):
    """One sinusoid meta-batch as float32 tensors (inputa, labela, inputb, labelb), as the original fed it.

    With `--baseline=oracle` every input row gets the task's amplitude and phase as columns 1, 2.
    """
    import tensorflow as tf
    batch_x, batch_y, amp, phase = data_generator.generate()
    if config.baseline == 'oracle':
        batch_x = np.concatenate([batch_x, np.zeros([batch_x.shape[0], batch_x.shape[1], 2])], 2)
        batch_x[:, :, 1] = amp[:, None]
        batch_x[:, :, 2] = phase[:, None]
    rows_a = data_generator.num_classes * config.update_batch_size
    return [tf.constant(v, tf.float32) for v in _split(batch_x, batch_y, rows_a)]


def _batches(experiment, train):
    """Endless iterator of meta-batches (inputa, labela, inputb, labelb) from the data generator.

    Classification batches come from the generator's tf.data pipeline (prefetched there; nothing
    is added after its last stage, which counts delivered batches for the checkpointed state).
    The dataset is made here, not lazily, so that a DataError comes before anything is written.
    """
    dg, rc = experiment.data_generator, experiment.run_config
    if rc.datasource == 'sinusoid':
        return (sinusoid_batch(dg, rc) for _ in itertools.count())
    if train and rc.method not in EPISODIC_TRAINING:   # the fine-tuning baselines pre-train on mini-batches
        return iter(dg.make_class_batches(rc.batch_size))
    if rc.protocol == 'reptile':
        return (reptile_batch(dg, rc, train) for _ in itertools.count())
    rows_a = dg.num_classes_for(train) * (train_shots(rc) if train else rc.update_batch_size)
    return (_split(images, labels, rows_a) for images, labels in dg.make_data_tensor(train=train))


def reptile_batch(data_generator, config, train):
    """A meta-batch of openai/supervised-reptile's tasks (`--protocol=reptile`) in MAML's batch format.

    Training: `meta_batch_size` tasks of N classes x train_shots examples (the reference's mini-dataset) as a,
    and as b one example per class of it (the step does not see b; the summaries measure the adapted model
    there, as the training task has no held-out query). Evaluation: one task of N x (K + 1) examples split as the
    reference's _split_train_test: the first example of each class is the query (b), the rest the support (a).
    """
    import tensorflow as tf
    dg, n = data_generator, config.num_classes
    shots = train_shots(config) if train else config.update_batch_size
    tasks = []
    for _ in range(config.meta_batch_size if train else 1):
        images, labels = dg.sample_mini_dataset(n, shots + (0 if train else 1), train=train)
        images = images.reshape(len(images), -1)
        onehot = np.eye(n, dtype=np.float32)[labels]
        first = np.array([list(labels).index(c) for c in range(n)])   # each class's first example
        rest = np.setdiff1d(np.arange(len(labels)), first)
        tasks.append((images, onehot, images[first], onehot[first]) if train else
                     (images[rest], onehot[rest], images[first], onehot[first]))
    return [tf.constant(np.stack(v), tf.float32) for v in zip(*tasks)]


# ------------------------------------------------------------------------------------ train
@dataclasses.dataclass(frozen=True)
class Intervals:
    """The original train()'s intervals (in iterations)."""
    summary: int = 100
    save: int = 1000
    print: int = 1000
    test_print: int = 5000

    @classmethod
    def for_config(cls, config):
        p = 1000 if config.datasource == 'sinusoid' else 100
        return cls(summary=100, save=1000, print=p, test_print=5 * p)


def tf1_tag(name):
    """The tag TF1's tf.summary.scalar wrote for `name`: characters other than [-/\\w.] become '_'.

    So the original's 'metatrain_Post-update loss, step 1' is 'metatrain_Post-update_loss__step_1'
    in its event files; we write the same tags.
    """
    return re.sub(r'[^-/\w.]', '_', name).lstrip('/')


def summary_values(out, classification):
    """{summary name: value} of a MetaOutput, named as the original's summaries (prefix not included)."""
    values = {'Pre-update loss': out.total_loss1}
    if classification:
        values['Pre-update accuracy'] = out.total_accuracy1
    for j in range(int(out.total_losses2.shape[0]) if out.total_losses2 is not None else 0):
        values['Post-update loss, step ' + str(j + 1)] = out.total_losses2[j]
        if classification:
            values['Post-update accuracy, step ' + str(j + 1)] = out.total_accuracies2[j]
    return values


def _write_scalars(writer, prefix, values, step):
    import tensorflow as tf
    metadata = tf.compat.v1.SummaryMetadata(
        plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name='scalars')).SerializeToString()
    with writer.as_default():
        for name, value in values.items():
            tf.summary.write(tf1_tag(prefix + name), tf.cast(value, tf.float32), step=step, metadata=metadata)


def _duration(seconds):
    seconds = int(round(seconds))
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s'


class RunLock:
    """An exclusive `flock` on `<exp_dir>/LOCK_FILE` while a process trains into the folder.

    The OS releases it when the process ends, however it ends, so a crashed run never leaves it stuck;
    the file stays (deleting a lock file races with the next process opening it) and names the holder.
    """

    def __init__(self, directory):
        self.path = os.path.join(directory, LOCK_FILE)
        self.fd = None

    def acquire(self):
        """Takes the lock, or raises UsageError naming the process that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(fd, 200, 0).decode(errors='replace').strip() or 'another process'
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise UsageError(f'cannot lock {self.path} ({err.strerror}); choose another --logdir') from None
            raise UsageError(f'{holder} is training into {os.path.dirname(self.path)}, so this run would overwrite '
                             f'its checkpoints; wait for it to end (or stop it), or give this run a --logdir of its '
                             f'own') from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f'pid {os.getpid()} on {socket.gethostname()} (since '
                      f'{datetime.datetime.now().isoformat(timespec="seconds")})\n'.encode(), 0)
        self.fd = fd
        return self

    def release(self):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _post_update(out, num_updates):
    """(loss, accuracy) after `num_updates` inner steps, or after the last reported one; for a learner
    without inner steps (T = 0) the query loss / accuracy."""
    steps = int(out.total_losses2.shape[0]) if out.total_losses2 is not None else 0
    if steps == 0:
        return out.total_loss1, out.total_accuracy1
    j = min(num_updates, steps) - 1
    return out.total_losses2[j], (out.total_accuracies2[j] if out.total_accuracies2 is not None else None)


def _summary_tasks(batch, config):
    """The tasks of a meta-batch that the training summaries evaluate: all of them for MAML and its
    variants, as the original; the first one for the learners whose evaluation adapts for many steps
    (Reptile: --eval_iters, the baselines: --finetune_epochs) or is cheap anyway."""
    if config.method in config_lib.INNER_LOOP:
        return batch
    return [t[:1] for t in batch]


def _summary_step(config):
    """The inner step whose query loss / accuracy the training prints show: --num_updates for MAML and its
    variants (the original's), the last reported one for the others (Reptile: after --eval_iters steps)."""
    return config.num_updates if config.method in config_lib.INNER_LOOP else 10 ** 9


def _latest_saved(experiment):
    """The last checkpoint this run saved or restored (a path), or None."""
    kept = experiment.checkpointer.kept
    return kept[-1] if kept else experiment.restored_from


def train(experiment, intervals=None, after_step=None):
    """The original train(): pretrain / meta-train steps, summaries, prints, checkpoints, validation.

    Also: holds the folder's RunLock (another process training into it is a UsageError); stops with
    TrainingDiverged when the objective a step returns, or a weight about to be saved, is nan/inf
    (nothing non-finite is ever saved); reports the first iteration of each phase (tracing, XLA compile)
    apart from the s/it and ETA of the steps after it, prints a progress line at least every
    PROGRESS_SECONDS, and closes with a summary (iterations, time, checkpoint, last losses).
    `intervals` (default Intervals.for_config) and `after_step(itr)` (called after each
    iteration, e.g. to interrupt a test run) are for tests. Returns the number of iterations done.
    """
    import tensorflow as tf
    e, rc, model = experiment, experiment.run_config, experiment.model
    iv = intervals or Intervals.for_config(rc)
    total = rc.pretrain_iterations + rc.metatrain_iterations
    if e.start_itr >= total:
        print(f'[maml-tf2] nothing to do: the checkpoint has {e.start_itr} of {total} iterations done')
        return e.start_itr
    classification = rc.datasource != 'sinusoid'
    batches = _batches(e, train=True)
    val_batches = _batches(e, train=False) if classification else None
    from infra import distribute as distribute_lib
    if not distribute_lib.is_chief(e.config):
        _chief_ready(e, None)
        return _train_not_chief(e, iv, total, classification, batches, val_batches, after_step)
    try:
        try:
            os.makedirs(e.exp_dir, exist_ok=True)
        except OSError as err:
            raise UsageError(f'cannot create {e.exp_dir} ({err.strerror}); choose another --logdir') from None
        lock = RunLock(e.exp_dir).acquire()
    except UsageError as err:
        _chief_ready(e, err)
    _chief_ready(e, None)
    writer = None
    try:
        writer = tf.summary.create_file_writer(e.exp_dir) if rc.log else None
        return _train_loop(e, iv, total, classification, batches, val_batches, writer, after_step)
    finally:
        if writer:
            writer.flush()
        lock.release()


def _chief_ready(e, error):
    """Raises `error` (the chief's, or None) on every --distribute=multi_worker worker alike: the chief tells them
    whether it could take --logdir (folder, RunLock) before the first all-reduce, which would otherwise wait for
    it. Without multi_worker: raises `error` if any."""
    if e.run_config.distribute == 'multi_worker':
        from infra import distribute as distribute_lib
        _, failed = distribute_lib.all_workers_range(e.model.strategy, int(error is not None))
        if failed and error is None:
            raise UsageError(f'the chief could not write into {e.exp_dir} (its own error says why); fix that and '
                             f'start every worker again')
    if error is not None:
        raise error


def _train_not_chief(e, iv, total, classification, batches, val_batches, after_step):
    """train() on a --distribute=multi_worker worker other than the chief: the same steps (the all-reduces need
    every worker), no summaries, no lock, and its checkpoints (TensorFlow's guidance: every worker saves) written
    into a temporary directory outside --logdir, deleted at the end; the chief writes the run's."""
    import shutil
    from infra import distribute as distribute_lib
    task = distribute_lib.task_name()
    e.checkpointer.directory = tempfile.mkdtemp(prefix='maml-tf2-' + task.replace(' ', '') + '-')
    try:
        done = _train_loop(e, iv, total, classification, batches, val_batches, None, after_step)
    finally:
        shutil.rmtree(e.checkpointer.directory, ignore_errors=True)
        e.checkpointer.directory = e.exp_dir
    print(f'[maml-tf2] {task} is not the chief: it wrote nothing into {e.config.logdir} (the chief writes the '
          f'checkpoints and summaries)', flush=True)
    return done


PROGRESS_SECONDS = 30       # train(): a progress line at least this often between the original's prints


def _train_loop(e, iv, total, classification, batches, val_batches, writer, after_step):
    from infra import loop
    rc, model = e.run_config, e.model
    print('Done initializing, starting training.')
    prelosses, postlosses = [], []
    start = last_time = last_print = time.perf_counter()
    last_itr, compile_s, n_first, last_means = e.start_itr, 0.0, 0, None
    itr = None
    episodic = rc.method in EPISODIC_TRAINING
    chunked = rc.steps_per_execution > 1 and episodic and hasattr(model, 'metatrain_steps')
    pending = []   # the objectives of iterations a chunk (--steps_per_execution) already ran
    for itr in range(e.start_itr, total):
        t0 = time.perf_counter()
        summary = itr % iv.summary == 0
        pretraining = itr < rc.pretrain_iterations
        if pending:
            objective = pending.pop(0)
        else:
            size = 1 if pretraining or not chunked else _chunk_size(e, iv, itr, total, classification)
            chunk = [next(batches) for _ in range(size)]
            if summary:   # the original fetched these with the update, i.e. from the weights before it
                before = model.evaluate(*_summary_tasks(chunk[0], rc)) if episodic else None
            if not episodic:
                objective = model.pretrain_step_on_batch(*chunk[0])
            elif pretraining or not chunked:
                objective = (model.pretrain_step if pretraining else model.metatrain_step)(*chunk[0])
            else:
                objective, *pending = model.metatrain_steps(
                    *loop.stack_batches(chunk, rc.steps_per_execution), size).numpy()[:size]
        if objective is not None and not np.isfinite(value := float(objective)):
            _diverged(e, itr, f'the {"pretraining" if pretraining else "meta-training"} objective is {value}')

        if summary and before is None:   # a baseline's pre-training: its loss, then accuracy on a validation task
            val = model.evaluate(*_summary_tasks(next(val_batches), rc))
            prelosses.append(float(objective))
            postlosses.append(val.total_accuracy1.numpy())
            if writer:
                _write_scalars(writer, 'metatrain_', {'Pre-update loss': objective}, itr)
                _write_scalars(writer, 'metaval_', summary_values(val, True), itr)
        elif summary:
            post_loss, post_acc = _post_update(before, _summary_step(rc))
            result = [before.total_loss1, post_loss]
            if classification:
                result += [before.total_accuracy1, post_acc]
            prelosses.append(result[-2].numpy())
            postlosses.append(result[-1].numpy())
            if writer:
                _write_scalars(writer, 'metatrain_', summary_values(before, classification), itr)
                if classification:   # the original's merge_all also ran the metaval tensors
                    _write_scalars(writer, 'metaval_', summary_values(
                        model.evaluate(*_summary_tasks(next(val_batches), rc)), True), itr)

        now = time.perf_counter()
        first = itr == e.start_itr or itr == rc.pretrain_iterations   # traces (and compiles) the step
        if first:
            compile_s, n_first = compile_s + now - t0, n_first + 1
            print(f'[maml-tf2] first {"pretraining" if pretraining else "meta-training"} iteration ({itr}): '
                  f'{now - t0:.1f}s (tracing{" and XLA compile" if rc.xla else ""}); s/it and ETA count the steps '
                  f'after it', flush=True)
        if itr != 0 and itr % iv.print == 0:
            if itr < rc.pretrain_iterations:
                print_str = 'Pretrain Iteration ' + str(itr)
            else:
                print_str = 'Iteration ' + str(itr - rc.pretrain_iterations)
            last_means = (np.mean(prelosses), np.mean(postlosses))
            print_str += ': ' + str(last_means[0]) + ', ' + str(last_means[1])
            print(print_str)
            prelosses, postlosses = [], []
            if not first:
                last_time, last_itr = _progress(itr, total, last_time, last_itr, now)
            last_print = now
        elif not first and now - last_print >= PROGRESS_SECONDS:
            _progress(itr, total, last_time, last_itr, now)
            last_print = now
        if first:
            last_time, last_itr, last_print = now, itr, now

        if itr != 0 and itr % iv.save == 0:
            _save(e, itr)

        # sinusoid is infinite data, so no need to test on meta-validation set.
        if itr != 0 and itr % iv.test_print == 0 and classification:
            out = model.evaluate(*_summary_tasks(next(val_batches), rc))
            print('Validation results: ' + str(out.total_accuracy1.numpy()) + ', '
                  + str(_post_update(out, _summary_step(rc))[1].numpy()), flush=True)
        if after_step:
            after_step(itr)

    prefix = _latest_saved(e) if itr != 0 and itr % iv.save == 0 else _save(e, itr)   # else just saved
    done = itr + 1 - e.start_itr
    wall = time.perf_counter() - start
    steady = f', then {(wall - compile_s) / (done - n_first):.4f} s/it' if done > n_first else ''
    print(f'[maml-tf2] trained iterations {e.start_itr}..{itr} of {total} in {_duration(wall)} (first iteration of '
          f'each phase {compile_s:.1f}s{steady})')
    kept = ', '.join(os.path.basename(p) for p in e.checkpointer.kept)
    from infra import distribute as distribute_lib
    chief = distribute_lib.is_chief(e.config)
    if chief:   # a multi_worker worker's own checkpoint is a temporary copy (_train_not_chief)
        print(f'[maml-tf2] checkpoint {prefix} (kept: {kept}; list in {os.path.join(e.exp_dir, CHECKPOINT_STATE)})'
              + (f'; TensorBoard summaries in {e.exp_dir}' if writer else ''))
    if prelosses:
        last_means = (np.mean(prelosses), np.mean(postlosses))
    if last_means and rc.method not in EPISODIC_TRAINING:
        print(f'[maml-tf2] last training summaries: pre-training loss {last_means[0]:.4f}, validation task '
              f'accuracy {last_means[1]:.4f}')
    elif last_means:
        kind = 'accuracy' if classification else 'loss'
        print(f'[maml-tf2] last training summaries: pre-update {kind} {last_means[0]:.4f}, post-update {kind} '
              f'{last_means[1]:.4f}')
    if chief:
        print('[maml-tf2] to test it: the same flags and --train=False (--test_set=True for the test split)',
              flush=True)
    return itr + 1


def _chunk_size(e, iv, itr, total, classification):
    """How many meta-iterations from `itr` on one compiled call runs (at most --steps_per_execution): a chunk
    starts where a summary evaluates the weights before the step, and ends where something reads the weights
    after it (a checkpoint, the validation print, the metaval summaries, the first iteration's timing)."""
    rc = e.run_config

    def read_after(j):
        return (j in (e.start_itr, rc.pretrain_iterations) or
                j != 0 and (j % iv.save == 0 or classification and (j % iv.summary == 0 or j % iv.test_print == 0)))
    size = 1
    while (size < rc.steps_per_execution and itr + size < total and (itr + size) % iv.summary != 0
           and not read_after(itr + size - 1)):
        size += 1
    return size


def _progress(itr, total, last_time, last_itr, now):
    """Prints `it N/total  s/it  ETA` (rate over the steps since last_itr); returns the new (last_time, last_itr)."""
    per_it = (now - last_time) / max(itr - last_itr, 1)
    print(f'[maml-tf2] it {itr}/{total}  {per_it:.4f} s/it  ETA {_duration(per_it * (total - itr - 1))}', flush=True)
    return now, itr


def _save(e, itr):
    """Saves `model<itr>` unless a checkpointed variable is nan/inf (then TrainingDiverged); returns the prefix."""
    bad = e.checkpointer.nonfinite()
    if bad:
        _diverged(e, itr, f'{bad[0]} holds nan/inf after the update' + (f' ({len(bad)} variables)' if len(bad) > 1
                                                                        else ''))
    return e.checkpointer.save(itr, itr + 1)


def _diverged(e, itr, what):
    last = _latest_saved(e)
    where = (f'the last good checkpoint is {last} (nothing after it was saved); to go on from it, run again with '
             f'the same flags and e.g. a lower --meta_lr, or test it with --train=False') if last else \
        'no checkpoint was saved; train again with e.g. a lower --meta_lr or --update_lr'
    if e.config.precision == 'float16':
        where += (f' (with --precision=float16 the likely cause is a float16 overflow of the scaled gradients: lower '
                  f'--loss_scale, now {e.config.loss_scale:g}, or use --precision=bfloat16)')
    raise TrainingDiverged(f'training diverged at iteration {itr}: {what}; {where}')


# ------------------------------------------------------------------------------------ test
def test_file_prefix(config):
    """The original's result file name (no extension): exp_dir/test_ubs<K>_stepsize<lr>."""
    return os.path.join(config.logdir, config_lib.exp_string(config),
                        'test_ubs' + str(config.update_batch_size) + '_stepsize' + str(float(config.update_lr)))


def results_prefix(experiment):
    """The split- and checkpoint-specific result name (no extension), beside the original's:
    `exp_dir/results/<val|test>_<checkpoint>_ubs<K>_stepsize<lr>` (checkpoint: `model<itr>`, or
    `tf1_model<itr>` for --tf1_checkpoint), so no evaluation overwrites another's."""
    c = experiment.config
    source = os.path.basename(experiment.restored_from or 'untrained')
    if c.tf1_checkpoint:
        source = 'tf1_' + source
    return os.path.join(experiment.exp_dir, RESULTS_DIR, f'{"test" if c.test_set else "val"}_{source}_ubs'
                        f'{c.update_batch_size}_stepsize{float(c.update_lr)}')


def _git_commit():
    """The repository's HEAD commit (with '+dirty' if tracked files changed), or None."""
    repo = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=repo, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=repo,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode:
        return None
    return head.stdout.strip() + ('+dirty' if dirty.stdout.strip() else '')


def _rows_table(metric, means, ci95):
    """Readable lines `step j: mean ± ci95` (accuracies in %); one 'query' line when there are no inner steps."""
    lines = []
    for j, (m, c) in enumerate(zip(means, ci95)):
        label = 'query' if len(means) == 1 else ('pre-update' if j == 0 else f'step {j}')
        value = f'{100 * m:6.2f}% ± {100 * c:.2f}%' if metric == 'accuracy' else f'{m:.4f} ± {c:.4f}'
        lines.append(f'[maml-tf2]   {label:>10}: {value}')
    return lines


def test(experiment):
    """The original test(): 600 tasks, meta batch 1, max(10, num_updates) inner steps.

    Each row is [pre-update, after step 1, ..., after step T] (T = 0, one column, for learners
    without inner steps): MSE for sinusoid, accuracy for classification. Prints means, stds, 95%
    CIs as the original did, then a readable table, and writes them to the original's
    `<prefix>.csv` and the rows to `<prefix>.pkl` ({'mses': array [600, T+1]}), plus the same pair
    and a json (split, checkpoint, iterations, tasks, statistics, flags, commit, date) under
    `results_prefix`. Prints progress every 10% of the tasks or 10 s, the first task (tracing)
    apart. Returns the rows.
    """
    e, rc, model = experiment, experiment.run_config, experiment.model
    from infra import distribute as distribute_lib
    if not distribute_lib.is_chief(e.config):
        print(f'[maml-tf2] {distribute_lib.task_name()} is not the chief of --distribute=multi_worker: the chief '
              f'tests and writes the results; nothing to do here', flush=True)
        return None
    num_tasks = NUM_TEST_POINTS   # read here: scripts set main.NUM_TEST_POINTS for smoke runs
    if rc.protocol == 'reptile':
        num_tasks = rc.eval_samples
    split = 'test' if rc.test_set else 'validation'
    source = e.restored_from or 'untrained weights'
    print(f'[maml-tf2] testing {source} on {num_tasks} {split} tasks (meta batch 1, '
          f'{config_lib.test_num_updates(rc)} inner steps where the method has them)', flush=True)
    if rc.datasource == 'sinusoid':
        e.data_generator.rng = np.random.RandomState(TEST_SEED)   # the original: np.random.seed(1)
    batches = _batches(e, train=False)
    metaval_accuracies = []
    start = last_print = time.perf_counter()
    first_s = 0.0
    for i in range(num_tasks):
        out = model.evaluate(*next(batches))
        first, after = ((out.total_accuracy1, out.total_accuracies2) if model.classification else
                        (out.total_loss1, out.total_losses2))
        metaval_accuracies.append([first.numpy()] + (list(after.numpy()) if after is not None else []))
        now = time.perf_counter()
        if i == 0:
            first_s = now - start
            print(f'[maml-tf2] first task {first_s:.1f}s (tracing); ETA from the tasks after it', flush=True)
            last_print = now
        elif i + 1 < num_tasks and (now - last_print >= 10 or
                                    ((i + 1) % max(num_tasks // 10, 1) == 0 and now - start >= 5)):
            per_task = (now - start - first_s) / i
            print(f'[maml-tf2] tested {i + 1}/{num_tasks} tasks  {per_task:.3f} s/task  ETA '
                  f'{_duration(per_task * (num_tasks - i - 1))}', flush=True)
            last_print = now

    metaval_accuracies = np.array(metaval_accuracies)
    means = np.mean(metaval_accuracies, 0)
    stds = np.std(metaval_accuracies, 0)
    ci95 = 1.96 * stds / np.sqrt(num_tasks)

    print(f'Mean {split} accuracy/loss, stddev, and confidence intervals')
    print((means, stds, ci95))

    prefix = test_file_prefix(e.config)
    results = results_prefix(e)
    try:   # exists unless the weights came from --tf1_checkpoint
        os.makedirs(os.path.dirname(results), exist_ok=True)
    except OSError as err:
        raise UsageError(f'cannot create {os.path.dirname(results)} ({err.strerror}); choose another --logdir') from None

    def write_csv(f):
        writer = csv.writer(f, delimiter=',')
        writer.writerow(['update' + str(i) for i in range(len(means))])
        writer.writerow(means)
        writer.writerow(stds)
        writer.writerow(ci95)
    metric = 'accuracy' if model.classification else 'mse'
    nonfinite = (~np.isfinite(metaval_accuracies)).sum(0)
    iterations = e.start_itr
    if e.config.tf1_checkpoint and e.restored_from:
        from infra import tf1_checkpoint as tf1_lib
        iterations = tf1_lib.iterations_done(e.restored_from)
    record = {
        'split': split, 'checkpoint': os.path.abspath(e.restored_from) if e.restored_from else None,
        'iterations_trained': iterations, 'num_tasks': num_tasks, 'inner_steps': len(means) - 1, 'metric': metric,
        'columns': ['update' + str(i) for i in range(len(means))], 'means': means.tolist(), 'stds': stds.tolist(),
        'ci95': ci95.tolist(), 'nonfinite_tasks': nonfinite.tolist(), 'files': {
            'csv': results + '.csv', 'pkl': results + '.pkl', 'original_csv': prefix + '.csv',
            'original_pkl': prefix + '.pkl'},
        'config': dataclasses.asdict(e.config), 'run_config': dataclasses.asdict(rc), 'method': rc.method,
        'git_commit': _git_commit(), 'date': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
        'host': socket.gethostname()}
    existed = os.path.exists(results + '.json')
    try:
        for path in (prefix, results):
            _atomic_write(path + '.pkl', lambda f: pickle.dump({'mses': metaval_accuracies}, f), binary=True)
            _atomic_write(path + '.csv', write_csv)
        _atomic_write(results + '.json', lambda f: f.write(json.dumps(record, indent=1, allow_nan=True) + '\n'))
    except OSError as err:
        raise UsageError(f'cannot write the results into {e.exp_dir} ({err.strerror}); free space (or fix the '
                         f'folder) and run the test again') from None

    wall = time.perf_counter() - start
    what = 'accuracy' if metric == 'accuracy' else 'mean squared error'
    print(f'[maml-tf2] {split} {what} over {num_tasks} tasks (mean ± 95% CI), {os.path.basename(source)} '
          f'({iterations} iterations trained), tested in {_duration(wall)}:')
    for line in _rows_table(metric, means, ci95):
        print(line)
    if nonfinite.any():
        print(f'[maml-tf2] warning: {int(nonfinite.max())} of {num_tasks} tasks gave nan/inf (so do the means '
              f'above); the per-task rows are in {results}.pkl')
    print(f'[maml-tf2] wrote {results}.{{csv,pkl,json}}' + (' (replacing an earlier evaluation of the same '
                                                             'checkpoint)' if existed else '')
          + f' and the original\'s {prefix}.{{csv,pkl}}', flush=True)
    return metaval_accuracies


# ------------------------------------------------------------------------------------ main
def config_warnings(c):
    """One line each for settings that run but are known to give misleading numbers (run() prints them first)."""
    lines = []
    if c.per_step_bn_stats:   # docs/RESULTS.md, 2026-12-06
        lines.append('--per_step_bn_stats normalises evaluation with running statistics, which also changes its inner '
                     'steps\' gradients from those of training (batch statistics): on Omniglot 5-way 1-shot it '
                     'evaluated at chance with 1 and 5 inner steps (docs/RESULTS.md); the released MAML++ code never '
                     'normalises with them, its numbers are runs without this flag')
    return lines


def run(config, explicit=(), intervals=None):
    """What `python main.py` does with `config` (`explicit`: the flags given): trains or tests."""
    experiment = prepare(config, explicit)
    for line in config_warnings(config):
        print('[maml-tf2] warning: ' + line)
    result = train(experiment, intervals) if config.train else test(experiment)
    from infra import distribute as distribute_lib
    if config.export_tf1 and distribute_lib.is_chief(config):
        from infra import tf1_checkpoint as tf1_lib
        print('[maml-tf2] wrote TF1 checkpoint ' + tf1_lib.export(experiment.model, config.export_tf1))
    return result


def fail(message, status=2):
    """Prints `main.py: error: <message>` as one line on stderr and exits."""
    print(f'{PROG}: error: ' + ' '.join(str(message).split()), file=sys.stderr)
    sys.exit(status)


def parse_flags(argv):
    """absl's flag parsing, with a bad or unknown flag reported as one line."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        fail(f'{e}; see python main.py --helpshort')


# TensorFlow's start-up lines that say nothing about the run (hidden unless --verbose): absl's notice, the
# C++ INFO / WARNING lines (oneDNN, CUDA stubs, CPU features, XLA service) and the failed cuInit of a
# machine without a GPU.
TF_NOISE = re.compile(r'^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR'
                      r'|[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] .*'
                      r'|E\d{4} [\d:.]+ +\d+ cuda_\w+\.cc:\d+\] failed call to cuInit.*'
                      r'|To enable the following instructions: .*)$')


def import_tensorflow(verbose=False, cpu_devices=1, multi_worker=False):
    """Imports TensorFlow and initialises its devices; returns the module.

    Unless `verbose`: sets TF_CPP_MIN_LOG_LEVEL=2 (C++ errors only; a value the user set is kept) and
    drops TF_NOISE lines from what the import writes to stderr (caught at the file descriptor, as
    the C++ libraries write there before any setting applies); any other line is passed on.
    `cpu_devices` > 1: the CPU is split into that many logical devices first (`--cpu_devices`). `multi_worker`:
    creates the process's MultiWorkerMirroredStrategy from TF_CONFIG before the devices (it must come first; it
    waits for every worker of the cluster); raises distribute.Error for a TF_CONFIG it cannot use.
    """
    from infra import distribute as distribute_lib
    if verbose or 'tensorflow' in sys.modules:
        import tensorflow as tf
        if multi_worker:
            distribute_lib.start_multi_worker()
        return tf
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    with tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow as tf
            if cpu_devices != 1:
                distribute_lib.split_cpu(cpu_devices)
            if multi_worker:
                distribute_lib.start_multi_worker()
            tf.config.list_logical_devices()    # device initialisation (cuInit) logs here
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode(errors='replace').splitlines():
                if not TF_NOISE.match(line):
                    print(line, file=sys.stderr)
    return tf


def main(argv):
    verbose = FLAGS.verbose
    for name in ('absl', 'tensorflow'):   # TF's own INFO lines (e.g. per checkpoint save); ours are prints
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    # the data generator's cache lines only with --verbose; decoding the images (seconds to a minute) always shows
    logging.getLogger('data_generator').setLevel(logging.INFO)
    if not verbose:
        logging.getLogger('data_generator').addFilter(lambda record: 'cache' not in record.getMessage())
    if len(argv) > 1:
        fail(f'unexpected argument {argv[1]!r}; flags are written --name=value')
    from infra import distribute as distribute_lib
    multi_worker = FLAGS.distribute == 'multi_worker' and FLAGS.train
    if multi_worker:   # its flags and TF_CONFIG checked before the strategy waits for the other workers
        try:
            check_config(config_from_flags(), explicit_flags())
            check_cluster(config_from_flags())
        except UsageError as e:
            fail(e, e.status)
        print(f'[maml-tf2] --distribute=multi_worker: {distribute_lib.task_name()} of '
              f'{distribute_lib.num_workers()} joining the cluster of TF_CONFIG (waits for all of them)', flush=True)
    try:
        import_tensorflow(verbose, FLAGS.cpu_devices if FLAGS.cpu_devices > 1 else 1, multi_worker)
    except distribute_lib.Error as e:
        fail(e)
    import data_generator as data_lib
    try:
        run(config_from_flags(), explicit_flags())
    except UsageError as e:
        fail(e, e.status)
    except data_lib.DataError as e:
        fail(e)


if __name__ == '__main__':
    app.run(main, flags_parser=parse_flags)
