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

This is the only module that reads flags: they become one frozen `Config` (config.py), and the derived
values (meta batch 1 at test time, the oracle moving meta-training into pretraining) are new configs.
Everything the flags alone can be found wrong for (infra/checks.py) is found before TensorFlow is
imported and before anything is written: a bad flag costs one line on stderr, `main.py: error:
<what>; <how to fix>`, exit 2. For tests, `prepare(config)` + `train(...)` / `test(...)` run the real
thing in-process. The rest lives in modules named after what they hold (docs/ARCHITECTURE.md): the
learners in learners/, checkpoints, result files, the loop's periodic actions and the batch streams
in infra/.

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
import dataclasses
import logging
import os
import sys
import time

import numpy as np
from absl import app, flags

import config as config_lib
from config import Config, run_config
from infra.actions import Intervals
from infra.checkpoints import Checkpointer, check_regime, checkpoint_exists, checkpoint_path, latest_checkpoint, regime
from infra.checks import UsageError, check_cluster, check_config, check_paths, config_warnings
from infra.quiet import filter_stderr, import_tensorflow

NUM_TEST_POINTS = 600       # tasks in test(), "calculated for omniglot" in the original
TEST_SEED = 1               # the original's np.random.seed(1) in test()
PROG = 'main.py'

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
    flags.DEFINE_bool('xla_cache', d.xla_cache, 'keep what XLA compiles in <logdir>/.xla_cache/<machine> and load it '
                      'in later runs that trace the same functions (a second test of a checkpoint, a resume of a '
                      'resumed run) instead of compiling '
                      'again (TensorFlow\'s persistent compilation cache; results bit for bit the same; off with '
                      '--distribute=multi_worker)', **f)
    flags.DEFINE_bool('verbose', False, 'show TensorFlow\'s own start-up and info lines (hidden by default)', **f)
    ## The learners beyond MAML: one flag per Config field that carries its help text
    define = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float, str: flags.DEFINE_string}
    for field in dataclasses.fields(Config):
        if 'help' in field.metadata:
            define[type(field.default)](field.name, field.default, field.metadata['help'], **f)


define_flags()


def config_from_flags(flag_values=FLAGS):
    """The parsed flags as a Config. `--baseline=None` (or empty) means no baseline."""
    values = {field.name: flag_values[field.name].value for field in dataclasses.fields(Config)}
    if values['baseline'] in ('None', ''):
        values['baseline'] = None
    return Config(**values)


def explicit_flags(flag_values=FLAGS):
    """The names of the Config flags given on the command line."""
    return tuple(f.name for f in dataclasses.fields(Config) if flag_values[f.name].present)


# ------------------------------------------------------------------------------------ set-up
def build_learner(config, data_generator):
    """The learner of `config.method`, sized for the data generator's inputs and outputs (a learner with a
    `build` class method takes what it needs from the data generator itself)."""
    from learners import learner_class
    cls = learner_class(config)
    dim_input = 3 if config.baseline == 'oracle' else data_generator.dim_input
    args = (dim_input, data_generator.dim_output, config_lib.test_num_updates(config), config)
    try:
        return cls.build(*args, data_generator) if hasattr(cls, 'build') else cls(*args)
    except (ValueError, NotImplementedError) as e:   # a setting the learner cannot build
        raise UsageError(f'--method={config.method}: {e}') from None


@dataclasses.dataclass
class Experiment:
    """Everything `train` / `test` work on, as `prepare` built it."""
    config: Config              # as given: exp_string and the output file names come from it
    run_config: Config          # with the derived values (see config.run_config)
    exp_dir: str                # logdir/exp_string
    data_generator: object
    model: object
    checkpointer: Checkpointer
    start_itr: int              # first iteration to run (iterations done by the restored checkpoint)
    restored_from: str | None

    def twin(self):
        """Another learner like `model`, with variables of its own (infra.actions.Evaluator evaluates copies of the
        weights on it while the training changes them)."""
        return build_learner(self.run_config, self.data_generator)


def prepare(config, explicit=()):
    """Checks `config`, builds the data generator and the model, restores the checkpoint to resume or test
    (`--tf1_checkpoint`: that TF1 checkpoint instead of the experiment's own).

    Writes nothing. Raises UsageError (or data_generator.DataError) for anything the user can fix.
    """
    check_config(config, explicit)
    check_cluster(config)
    from infra import distribute as distribute_lib
    from infra import tf1_checkpoint as tf1_lib
    from learners import learner_class
    rc = run_config(config)
    try:   # before anything initialises TensorFlow's devices (multi_worker: main() created it at import)
        if config.cpu_devices != 1:
            distribute_lib.split_cpu(config.cpu_devices)
        distribute_lib.set_tf32(config.tf32)
        strategy = distribute_lib.make_strategy(rc) if rc.train else None
    except distribute_lib.Error as e:
        raise UsageError(str(e)) from None
    exp_dir = os.path.join(config.logdir, config_lib.exp_string(config))
    tf1_file = check_paths(config)

    model_file = None
    if not tf1_file and (rc.resume or not rc.train):
        model_file = latest_checkpoint(exp_dir)
        if rc.test_iter > 0:
            model_file = checkpoint_path(exp_dir, rc.test_iter)
            if not checkpoint_exists(model_file):
                raise UsageError(f'no checkpoint {model_file} (--test_iter={rc.test_iter}); pick an iteration '
                                 f'that was saved (see {os.path.join(exp_dir, "checkpoint")}) or -1 for the latest')
    if not rc.train and model_file is None and not tf1_file:
        raise UsageError(f'no checkpoint to test in {exp_dir}; train first with the same flags '
                         f'(without --train=False), point --logdir at the training run, or pass --tf1_checkpoint')
    record = None
    if model_file:
        record = (check_regime(config, model_file, 'resume') if rc.train else
                  check_regime(config, model_file, 'test', explicit))
    elif rc.train and latest_checkpoint(exp_dir):    # --resume=False (or --tf1_checkpoint) over another run?
        record = check_regime(config, latest_checkpoint(exp_dir), 'overwrite')

    import data_generator as data_lib
    # examples per class (per task for sinusoid) as the original chose them: 2K, or K + 15 when
    # training on MiniImagenet; K + --num_query if given; the learner's own for meta-training where it differs
    data_generator = data_lib.DataGenerator(data_lib.num_samples_per_class(rc), rc.meta_batch_size, rc,
                                            train_samples_per_class=learner_class(rc).train_samples_per_class(rc),
                                            run_dir=exp_dir)
    rc = data_lib.with_image_shape(rc, data_generator)   # a user's images: their size and channels
    with distribute_lib.scope(strategy):
        model = build_learner(rc, data_generator)
    distribute_lib.distribute_learner(model, strategy)
    checkpointer = Checkpointer(model, data_generator, exp_dir,
                                record={'regime': regime(config), 'config': dataclasses.asdict(config)})
    experiment = Experiment(config, rc, exp_dir, data_generator, model, checkpointer, 0, model_file or tf1_file)
    if tf1_file:
        experiment.start_itr = tf1_lib.load_into(experiment, tf1_file)
    elif model_file:
        print('Restoring model weights from ' + model_file)
        if record is None:
            print(f'[maml-tf2] {os.path.basename(model_file)} has no record of the flags it was trained with '
                  f'(written before maml-tf2 stored one), so they are not checked against these')
        experiment.start_itr = checkpointer.restore(model_file, restore_data=rc.train)
    if rc.train and rc.distribute == 'multi_worker':
        low, high = distribute_lib.all_workers_range(strategy, experiment.start_itr)
        if low != high:   # a worker that does not see the chief's checkpoint would train other weights
            raise UsageError(f'the workers restored different checkpoints of {exp_dir} ({low} .. {high} iterations '
                             f'done); resuming --distribute=multi_worker needs --logdir on a filesystem every '
                             f'machine shares, or --resume=False on all of them')
    return experiment


# ------------------------------------------------------------------------------------ train
def train(experiment, intervals=None, after_step=None):
    """The original train(): pretrain / meta-train steps, with summaries, prints, checkpoints and validation as
    the periodic actions of infra/actions.py, in the original's order.

    Also: holds the folder's RunLock (another process training into it is a UsageError); stops with
    TrainingDiverged when the objective a step returns, or a weight about to be saved, is nan/inf
    (nothing non-finite is ever saved); reports the first iteration of each phase (tracing, XLA compile)
    apart from the s/it and ETA of the steps after it, prints a progress line at least every
    actions.PROGRESS_SECONDS, and closes with a summary (iterations, time, checkpoint, last losses).
    `intervals` (default Intervals.for_config) and `after_step(itr)` (called after each iteration, e.g. to
    interrupt a test run) are for tests. Returns the number of iterations done.
    """
    from infra import actions, batches
    from infra.checkpoints import training_folder
    e, rc = experiment, experiment.run_config
    iv = intervals or Intervals.for_config(rc)
    total = rc.pretrain_iterations + rc.metatrain_iterations
    if e.start_itr >= total:
        print(f'[maml-tf2] nothing to do: the checkpoint has {e.start_itr} of {total} iterations done')
        return e.start_itr
    train_batches = batches.stream(e, train=True)
    val_batches = batches.stream(e, train=False) if e.model.classification else None
    with training_folder(e) as writer:
        print('Done initializing, starting training.')
        first = actions.FirstIteration(e)
        summaries = actions.Summaries(e, iv.summary, writer, val_batches)
        checkpoints = actions.Checkpoints(e, iv.save)
        prints = actions.Prints(e, iv.print, total, summaries, checkpoints, writer, first)
        validation = actions.Validation(e, iv.test_print, val_batches, summaries)
        todo = [first, summaries, prints, checkpoints, validation]   # in order
        steps = actions.Steps(e, total, train_batches, todo, checkpoints)
        try:
            for itr in range(e.start_itr, total):
                batch = steps.batch(itr)
                for action in todo:
                    action.begin(itr, batch)
                objective = steps.run(itr)
                for action in todo:
                    action.end(itr, objective)
                if after_step:
                    after_step(itr)
        except BaseException:
            summaries.abandon()
            raise
        summaries.close(itr)
        checkpoints.close(itr)
        prints.close(itr)
    return itr + 1


# ------------------------------------------------------------------------------------ test
def test(experiment):
    """The original test(): 600 tasks, meta batch 1, max(10, num_updates) inner steps.

    Each row is [pre-update, after step 1, ..., after step T] (T = 0, one column, for learners
    without inner steps): MSE for sinusoid, accuracy for classification. Prints means, stds, 95%
    CIs as the original did, then a readable table, and writes the result files (infra/results.py).
    Prints progress every 10% of the tasks or 10 s, the first task (tracing) apart. Returns the rows.
    """
    from infra import batches, results
    from infra import distribute as distribute_lib
    from infra.actions import duration
    e, rc, model = experiment, experiment.run_config, experiment.model
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
    if config_lib.regression(rc):
        e.data_generator.rng = np.random.RandomState(TEST_SEED)   # the original: np.random.seed(1)
    stream = batches.stream(e, train=False)
    metaval_accuracies = []
    start = last_print = time.perf_counter()
    first_s = 0.0
    for i in range(num_tasks):
        out = model.evaluate(*next(stream))
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
                  f'{duration(per_task * (num_tasks - i - 1))}', flush=True)
            last_print = now

    metaval_accuracies = np.array(metaval_accuracies)
    means = np.mean(metaval_accuracies, 0)
    stds = np.std(metaval_accuracies, 0)
    ci95 = 1.96 * stds / np.sqrt(num_tasks)

    print(f'Mean {split} accuracy/loss, stddev, and confidence intervals')
    print((means, stds, ci95))
    results.write(e, split, num_tasks, metaval_accuracies, means, stds, ci95, time.perf_counter() - start)
    return metaval_accuracies


# ------------------------------------------------------------------------------------ main
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
    try:   # what the flags alone can be found wrong for, before TensorFlow is imported
        check_config(config_from_flags(), explicit_flags())
        check_paths(config_from_flags())
        if multi_worker:   # TF_CONFIG checked before the strategy waits for the other workers
            check_cluster(config_from_flags())
    except UsageError as e:
        fail(e, e.status)
    if multi_worker:
        print(f'[maml-tf2] --distribute=multi_worker: {distribute_lib.task_name()} of '
              f'{distribute_lib.num_workers()} joining the cluster of TF_CONFIG (waits for all of them)', flush=True)
    from infra import compile_cache   # before TensorFlow reads TF_XLA_FLAGS; multi_worker: see docs/SCALING.md
    compile_cache.enable(FLAGS.logdir,
                         disabled=not (FLAGS.xla and FLAGS.xla_cache) or FLAGS.distribute == 'multi_worker')
    try:
        import_tensorflow(verbose, FLAGS.cpu_devices if FLAGS.cpu_devices > 1 else 1, multi_worker)
    except distribute_lib.Error as e:
        fail(e)
    if not verbose:   # XLA's slow-compile banner looks like a crash; train() says itself that it compiles
        filter_stderr()
    import data_generator as data_lib
    try:
        run(config_from_flags(), explicit_flags())
    except UsageError as e:
        fail(e, e.status)
    except data_lib.DataError as e:
        fail(e)


if __name__ == '__main__':
    app.run(main, flags_parser=parse_flags)
