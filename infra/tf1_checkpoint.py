"""Checkpoints of the original TF1 code (a `tf.train.Saver` file): load them into a MAML, write them.

The original saved `tf.trainable_variables()` with a TF1 Saver: `<dir>/model<itr>.index` +
`.data-00000-of-00001` and a `checkpoint` state file, the variables named as its graph named them
(`model/conv1`, `model/Variable_3`, `model/0/beta`, ...; `MAML.tf1_names()` maps the port's keys to
those names). No Adam state, iteration count or batch-norm moving statistics are in such a file.

* `resolve(path)`: the checkpoint prefix a path names (a prefix, one of its files, or a directory
  with a `checkpoint` state file -> its latest). Needs no TensorFlow, so main.py checks paths first.
* `load(model, prefix)`: checks every variable the model needs (present, same shape), then assigns
  them all, or raises `Error` having changed nothing. Extra variables: optimizer state and moving
  statistics (which a Saver over all variables would have saved, and which the original never
  used) are ignored and returned; any other extra variable means the file is of another network
  and is an error, so a file is never half-loaded into a model of other flags.
* `export(model, prefix)`: writes the model's meta-parameters under the original names with
  `SaveV2` (the op TF1's Saver ran), then the `checkpoint` state file, as a TF1 Saver would.
"""
import os
import re

STATE_FILE = 'checkpoint'
DATA_SUFFIX = '.data-00000-of-00001'
# Variables of a TF1 file that are not model parameters: Adam slots and powers (`model/conv1/Adam`,
# `model/conv1/Adam_1`, `beta1_power`, `beta2_power_1`), batch-norm moving statistics, global_step.
IGNORED = re.compile(r'(^|/)(Adam(_\d+)?|beta[12]_power(_\d+)?|moving_mean|moving_variance|global_step)$')
TF2_OBJECT_GRAPH = '_CHECKPOINTABLE_OBJECT_GRAPH'


class Error(Exception):
    """A checkpoint that cannot be used; the message is one line: '<what is wrong>; <how to fix>'."""


# ---------------------------------------------------------------------------- paths (no TensorFlow)
def exists(prefix):
    """Whether `prefix` is a checkpoint (its `.index` file exists)."""
    return os.path.isfile(prefix + '.index')


def iterations_done(prefix):
    """Iterations a TF1 checkpoint `model<N>` holds: N + 1 (the original saved `model<itr>` after
    iteration itr, counting from 0); 0 for any other name. The original resumed at N itself."""
    m = re.fullmatch(r'model(\d+)', os.path.basename(prefix))
    return int(m.group(1)) + 1 if m else 0


def _state_entries(directory):
    """[(key, path as written)] of a TF1 `checkpoint` state file; [] if there is none."""
    try:
        with open(os.path.join(directory, STATE_FILE)) as f:
            text = f.read()
    except OSError:
        return []
    return re.findall(r'^\s*(model_checkpoint_path|all_model_checkpoint_paths)\s*:\s*"(.*)"\s*$', text, re.M)


def _locate(directory, written):
    """The prefix a state file entry names, or None. Relative entries are relative to `directory`
    (TF's rule); an entry from another machine or working directory falls back to its base name."""
    for candidate in (os.path.join(directory, written), os.path.join(directory, os.path.basename(written))):
        if exists(candidate):
            return candidate
    return None


def _example(directory):
    """A checkpoint prefix in `directory` to suggest (the highest model<N>), or DIR/model<itr>."""
    found = [n[:-len('.index')] for n in os.listdir(directory) if n.endswith('.index')]
    if not found:
        return os.path.join(directory, 'model<itr>')
    return os.path.join(directory, max(found, key=lambda n: (iterations_done(n), n)))


def resolve(path):
    """The checkpoint prefix `path` names: the prefix itself, one of its files (`.index`, `.data-*`),
    or a directory with a TF1 `checkpoint` state file (its latest). Raises Error otherwise."""
    m = re.fullmatch(r'(.*)\.(index|data-\d{5}-of-\d{5})', path)
    if m and os.path.isfile(path):
        path = m.group(1)
    if exists(path):
        return path
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, STATE_FILE)):
            latest = [p for key, p in _state_entries(path) if key == 'model_checkpoint_path']
            prefix = _locate(path, latest[-1]) if latest else None
            if prefix:
                return prefix
            raise Error(f'the latest checkpoint named in {os.path.join(path, STATE_FILE)} does not exist; '
                        f'pass a checkpoint prefix such as {_example(path)}')
        raise Error(f'{path} is a directory without a TF1 `{STATE_FILE}` file; pass a checkpoint prefix '
                    f'such as {_example(path)}')
    raise Error(f'no TF1 checkpoint: neither {path}.index nor a directory {path} exists; pass the prefix of '
                f'a TF1 checkpoint (e.g. DIR/model59000, without .index) or its directory')


# ---------------------------------------------------------------------------- load
def _shape_hint(model, key, got, want):
    """The flag that gives variable `key` the checkpoint's shape `got` (the model has `want`)."""
    c = model.config
    other = 'the checkpoint is of another network: check --datasource, --conv and --baseline'
    if len(got) != len(want):
        return other
    i = next(i for i in range(len(got)) if got[i] != want[i])
    n = got[i]
    if model.classification and c.conv:
        if key == 'conv1' and i == 2:
            return {1: 'its images have 1 channel: pass --datasource=omniglot',
                    3: 'its images have 3 channels: pass --datasource=miniimagenet'}.get(n, other)
        if key.startswith('conv') or key in ('b1', 'b2', 'b3', 'b4') or key in model.norm_weights:
            return f'pass --num_filters={n}'
        if key == 'b5' or (key == 'w5' and i == 1):
            return f'pass --num_classes={n}'
        return other
    layers = len(model.dim_hidden) + 1
    if model.classification and (key == f'b{layers}' or (key == f'w{layers}' and i == 1)):
        return f'pass --num_classes={n}'
    if key == 'w1' and i == 0 and not model.classification:
        return {3: 'it was trained with the oracle baseline: pass --baseline=oracle',
                1: 'it was trained without the oracle baseline: drop --baseline=oracle'}.get(n, other)
    if key == 'w1' and i == 0:
        return f'its input has {n} values: check --datasource'
    return other


def _missing_hint(model, key, names, present):
    """Why variable `key` (TF1 name `names[key]`) can be missing from a file holding `present`."""
    if not any(n.startswith('model/') for n in present):
        if TF2_OBJECT_GRAPH in present:
            return ('it is a TF2 object-based checkpoint (maml-tf2 writes those): load it with --logdir and '
                    '--test_iter instead of --tf1_checkpoint')
        return 'it holds no variable of the original\'s model/ scope: pass a checkpoint of the original MAML code'
    if key in model.norm_weights:
        if key.endswith('/gamma') and names[key][:-len('gamma')] + 'beta' in present:
            return 'it was trained with batch norm (beta, no gamma): pass --norm=batch_norm'
        return 'it was trained without normalisation: pass --norm=None'
    if key.startswith('conv'):
        return 'it has no conv kernels (a fully connected net): pass --conv=False or --datasource=sinusoid'
    return 'the checkpoint is of another network: check --datasource, --conv and --norm'


def _extra_hint(name):
    if name.endswith('/gamma'):
        return 'it was trained with layer norm: pass --norm=layer_norm'
    if name.endswith('/beta'):
        return 'it was trained with normalisation: pass --norm=batch_norm or --norm=layer_norm'
    return 'the checkpoint is of another network: check --datasource, --conv and --norm'


def _shape(shape):
    return '[' + ', '.join(str(int(d)) for d in shape) + ']'


def load(model, prefix):
    """Loads the TF1 checkpoint `prefix` into `model.weights` and `model.norm_weights`, exactly.

    Checks first that every variable of `model.tf1_names()` is in the file with the model's shape
    and that the file has no other model parameter, then assigns all (cast to the model's dtype).
    Raises Error (nothing assigned) otherwise. Returns the sorted names of the file's variables
    that were ignored (optimizer state, moving statistics: see IGNORED).
    """
    import tensorflow as tf
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
    except Exception as e:  # DataLossError, NotFoundError, ...: a damaged or foreign file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise Error(f'cannot read checkpoint {prefix} ({first}); pass an intact TF1 checkpoint') from None
    names = model.tf1_names()
    variables = model.meta_variables
    for key, name in names.items():
        if name not in shapes:
            raise Error(f'checkpoint {prefix} has no variable {name} (the model\'s {key!r}); '
                        + _missing_hint(model, key, names, shapes))
        got, want = list(shapes[name]), variables[key].shape.as_list()
        if got != want:
            raise Error(f'variable {name} has shape {_shape(got)} in checkpoint {prefix} but {_shape(want)} in '
                        f'the model; {_shape_hint(model, key, got, want)} (the flags must be those it was '
                        f'trained with)')
    extra = sorted(set(shapes) - set(names.values()))
    unexpected = [n for n in extra if not IGNORED.search(n)]
    if unexpected:
        name = unexpected[0]
        raise Error(f'checkpoint {prefix} has variable {name} {_shape(shapes[name])}, which the model does not '
                    f'have; {_extra_hint(name)}')
    values = {key: reader.get_tensor(name) for key, name in names.items()}
    for key, value in values.items():
        variables[key].assign(tf.cast(value, variables[key].dtype))
    return extra


# ---------------------------------------------------------------------------- export
def export(model, prefix):
    """Writes `model`'s meta-parameters as a TF1 checkpoint `prefix` (.index + .data-00000-of-00001)
    under the original's names, and makes it the latest in the directory's `checkpoint` state file
    (earlier entries whose files exist are kept). Returns `prefix`.

    Written under a temporary name and renamed (data first, index last), then the state file is
    replaced, so a crash leaves no half-written checkpoint behind the names. Like the original's
    Saver it holds the trainable variables only: no Adam state, no moving statistics.
    """
    import tensorflow as tf
    directory, base = os.path.split(os.path.abspath(prefix))
    os.makedirs(directory, exist_ok=True)
    names = model.tf1_names()
    keys = sorted(names, key=names.get)
    tmp = os.path.join(directory, f'.tmp{os.getpid()}_{base}')
    tf.raw_ops.SaveV2(prefix=tmp, tensor_names=[names[k] for k in keys], shape_and_slices=[''] * len(keys),
                      tensors=[tf.convert_to_tensor(model.meta_variables[k]) for k in keys])
    for suffix in (DATA_SUFFIX, '.index'):
        os.replace(tmp + suffix, os.path.join(directory, base + suffix))
    kept = [p for key, p in _state_entries(directory) if key == 'all_model_checkpoint_paths'
            and _locate(directory, p) not in (None, os.path.join(directory, base))]
    lines = [f'model_checkpoint_path: "{base}"'] + [f'all_model_checkpoint_paths: "{p}"' for p in kept + [base]]
    state_tmp = os.path.join(directory, f'.tmp{os.getpid()}_{STATE_FILE}')
    with open(state_tmp, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    os.replace(state_tmp, os.path.join(directory, STATE_FILE))
    return prefix


# ---------------------------------------------------------------- main.py's --tf1_checkpoint / --export_tf1
def check_paths(config, exp_dir):
    """Returns the prefix `--tf1_checkpoint` names (None without it); checks `--export_tf1`.

    Raises UsageError, before anything is read or written, for a checkpoint that does not exist, a
    native checkpoint the flags would also load (`--test_iter`; `--resume` with one in `exp_dir`),
    and an export prefix that is a directory, unwritable, or inside the experiment directory.
    """
    from infra.checkpoints import latest_checkpoint
    from infra.checks import UsageError, check_writable_dir
    prefix = None
    if config.tf1_checkpoint:
        try:
            prefix = resolve(config.tf1_checkpoint)
        except Error as e:
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
        check_writable_dir(directory, what)
    return prefix


def load_into(experiment, prefix):
    """Loads the TF1 checkpoint `prefix` into the model; returns the iterations to count as done.

    When training, those are N + 1 for a file `model<N>` (the original continued at N from the
    name; it saved `model<N>` after iteration N), with fresh Adams and data stream, as the
    original's restore had; testing needs none.
    """
    from infra.checks import UsageError
    try:
        ignored = load(experiment.model, prefix)
    except Error as e:
        raise UsageError(f'--tf1_checkpoint={experiment.config.tf1_checkpoint}: {e}') from None
    print('Restoring model weights from ' + prefix)
    if ignored:
        print(f'[maml-tf2] not loaded from the TF1 checkpoint (optimizer state / moving statistics, unused by the '
              f'original\'s model): {len(ignored)} variables, e.g. {ignored[0]}')
    done = iterations_done(prefix) if experiment.run_config.train else 0
    if done:
        print(f'[maml-tf2] continuing training at iteration {done} (from the name {os.path.basename(prefix)}), '
              f'with fresh Adam optimizers')
    return done
