"""The usage checks: everything the flags alone can be found wrong for, before TensorFlow is imported.

A bad flag costs one line on stderr, `main.py: error: <what>; <how to fix>`, exit status 2
(`UsageError`); a run whose objective or weights became nan/inf ends the same way with status 3
(`TrainingDiverged`). Nothing here imports TensorFlow, so main.py reports these in about a second.
"""
import os

import config as config_lib
from config import Config

EXIT_USAGE = 2              # main.py: error: ... (bad flags, data, folders, disk)
EXIT_DIVERGED = 3           # main.py: error: ... (the training objective or the weights became nan/inf)


class UsageError(Exception):
    """Something the user can fix; the message is one line: '<what is wrong>; <how to fix>'."""
    status = EXIT_USAGE


class TrainingDiverged(UsageError):
    """The training objective or the weights became nan/inf; nothing non-finite was saved. Exit status 3."""
    status = EXIT_DIVERGED


def matchingnet_error(c):
    """The one-line error for --distance / --cosine_scale / --learn_cosine_scale values that cannot be meant,
    or None (learners.matchingnet raises it as a ValueError too)."""
    if c.distance not in ('l2', 'cosine'):
        return f'unknown --distance={c.distance!r}; use l2 or cosine'
    if c.distance == 'l2' and (c.cosine_scale != 1.0 or c.learn_cosine_scale):
        return '--cosine_scale and --learn_cosine_scale scale a cosine; add --distance=cosine or drop them'
    if not c.cosine_scale > 0:
        return f'--cosine_scale={c.cosine_scale} must be > 0; pass e.g. 1 (Vinyals) or 100 (CloserLookFewShot)'
    return None


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
    import networks   # imports nothing of TensorFlow: the usage errors come first
    why = networks.problem(c)
    if why:
        raise UsageError(why)
    if config_lib.datasource_kind(c.datasource) is None:
        raise UsageError(f'unknown --datasource={c.datasource!r}; use sinusoid, omniglot or miniimagenet, or for your '
                         f'own data folder, tfds:NAME or MODULE:FUNCTION (docs/DATA.md)')
    if c.method not in ('reptile',) + config_lib.INNER_LOOP and config_lib.regression(c):
        raise UsageError(f'--method={c.method} classifies images; use --datasource=omniglot or miniimagenet')
    if c.protocol == 'reptile' and (c.method != 'reptile' or c.datasource != 'omniglot'):
        raise UsageError('--protocol=reptile is openai/supervised-reptile\'s Omniglot set-up; use it with '
                         '--method=reptile --datasource=omniglot, or drop it')
    if c.fce:
        raise UsageError('--fce: full-context embeddings are not implemented; drop --fce (Matching Networks '
                         'without FCE, as the ProtoNets paper\'s comparison)')
    if c.method == 'matchingnet' and matchingnet_error(c):
        raise UsageError(matchingnet_error(c))
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


def check_writable_dir(path, what):
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


def config_warnings(c):
    """One line each for settings that run but are known to give misleading numbers (run() prints them first)."""
    lines = []
    return lines


def check_paths(config):
    """Returns the TF1 checkpoint prefix --tf1_checkpoint names (None without it). Raises UsageError for a path flag
    that cannot work, found without TensorFlow or data: a --data_dir that is not a folder, a --tf1_checkpoint that
    does not exist or clashes with the run's own, an --export_tf1 or --logdir that cannot be written."""
    import config as config_lib
    from infra import tf1_checkpoint as tf1_lib
    if config.data_dir and config.datasource != 'sinusoid' and not os.path.isdir(os.path.expanduser(config.data_dir)):
        raise UsageError(f'--data_dir={config.data_dir} is not a folder; point it at the folder that holds the '
                         f'{config.datasource} files (docs/DATA.md)')
    exp_dir = os.path.join(config.logdir, config_lib.exp_string(config))
    prefix = tf1_lib.check_paths(config, exp_dir)
    check_writable_dir(exp_dir, '--logdir=' + config.logdir)
    return prefix
