"""Checkpoints and what they record: `model<itr>` files written atomically (`Checkpointer`), the run's
regime stored with each (`regime`, `check_regime`: a run never resumes, overwrites or tests a checkpoint
of another regime), the `checkpoint` state file read without TensorFlow, and the `RunLock` that keeps two
processes from training into one folder. docs/CHECKPOINTS.md describes the files.
"""
import contextlib
import datetime
import errno
import fcntl
import json
import os
import re
import socket

import numpy as np

import config as config_lib
from config import Config
from infra.checks import UsageError

MAX_TO_KEEP = 10            # checkpoints kept, as the original's Saver(max_to_keep=10)
CHECKPOINT_STATE = 'checkpoint'
LOCK_FILE = '.train.lock'   # in the experiment folder: held (flock) by the process training into it


# What a checkpoint's weights mean: two runs that differ in one of these never share checkpoints
# (plus every learner field that names the experiment, see regime()).
REGIME_FIELDS = ('method', 'protocol', 'baseline', 'training', 'datasource', 'num_classes', 'conv', 'norm',
                 'num_filters', 'max_pool')


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
    rc = config_lib.run_config(config)
    training = ('pretrain' if rc.metatrain_iterations == 0 else
                'pretrain+metatrain' if rc.pretrain_iterations else 'metatrain')
    values = {name: getattr(config, name) for name in REGIME_FIELDS if name != 'training'}
    values['training'] = training
    if config_lib.regression(config):
        values['conv'] = None
    values.update(config_lib.learner_fields(config))
    values.update(config_lib.recorded_fields(config))    # at any value: a default that changed (config.py)
    return values


def regime_differences(stored, current):
    """[(field, stored value, current value)] where two regime() dicts differ (a learner field missing from
    `current` is at its default; from `stored`, at its value before the field existed, config.value_before)."""
    default = Config()
    out = []
    for name in list(current) + [n for n in stored if n not in current]:
        a, b = stored.get(name, config_lib.value_before(name)), current.get(name, getattr(default, name, None))
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
        diff = [d for d in diff if set(regime_flags(d[0])) & set(explicit)
                or d[0] in dict(config_lib.recorded_fields(config))]    # a changed default: never "as stored"
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


def atomic_write(path, write, binary=False):
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
        atomic_write(os.path.join(self.directory, CHECKPOINT_STATE), lambda f: f.write('\n'.join(lines) + '\n'))


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


@contextlib.contextmanager
def training_folder(experiment):
    """While a run trains into `experiment.exp_dir`: yields its TensorBoard writer (None without --log).

    The chief (every process without --distribute=multi_worker) creates the folder and holds its RunLock; it
    tells the other workers whether it could before the first all-reduce, which would otherwise wait for it
    (each raises the same UsageError). A worker other than the chief runs the same steps without summaries or
    lock, its checkpoints (TensorFlow's guidance: every worker saves) in a temporary folder outside --logdir,
    deleted at the end.
    """
    import shutil
    import tempfile
    import tensorflow as tf
    from infra import distribute as distribute_lib
    e = experiment
    if not distribute_lib.is_chief(e.config):
        _chief_ready(e, None)
        task = distribute_lib.task_name()
        e.checkpointer.directory = tempfile.mkdtemp(prefix='maml-tf2-' + task.replace(' ', '') + '-')
        try:
            yield None
        finally:
            shutil.rmtree(e.checkpointer.directory, ignore_errors=True)
            e.checkpointer.directory = e.exp_dir
        print(f'[maml-tf2] {task} is not the chief: it wrote nothing into {e.config.logdir} (the chief writes the '
              f'checkpoints and summaries)', flush=True)
        return
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
        writer = tf.summary.create_file_writer(e.exp_dir) if e.run_config.log else None
        yield writer
    finally:
        if writer:
            writer.flush()
        lock.release()


def _chief_ready(e, error):
    """Raises `error` (the chief's, or None) on every --distribute=multi_worker worker alike; without multi_worker:
    raises `error` if any."""
    if e.run_config.distribute == 'multi_worker':
        from infra import distribute as distribute_lib
        _, failed = distribute_lib.all_workers_range(e.model.strategy, int(error is not None))
        if failed and error is None:
            raise UsageError(f'the chief could not write into {e.exp_dir} (its own error says why); fix that and '
                             f'start every worker again')
    if error is not None:
        raise error
