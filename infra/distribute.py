"""The meta-batch over several devices (tf.distribute), and the device set-up the scaling flags need (issue 16).

`--distribute=mirrored` trains an inner-loop learner (maml, metasgd, anil and the MAML++ switches) with
`tf.distribute.MirroredStrategy` over the local GPUs (or, without one, the logical CPUs of `--cpu_devices`):

* the learner is built under the strategy's scope, so every variable (weights, Adam slots and step counts,
  learned inner rates) is a MirroredVariable: one copy per device, saved as one value, so a checkpoint written
  with any number of replicas resumes with any other;
* every replica takes its contiguous share of the global meta-batch (replica r: tasks r*B/R .. (r+1)*B/R - 1;
  the data stream draws the same B tasks whatever R is) and runs the learner's own meta-gradient on it, compiled
  as always (`tf.function(jit_compile=--xla)`), with per-task batch-norm statistics as on one device (nothing is
  synchronised inside the inner loop: fast weights are plain tensors);
* the per-replica meta-gradients, each already divided by R (the replica's loss is sum over its tasks / (B/R), so
  sum_r grad_r / R = sum over all tasks / B, the original's objective), are all-reduced once per meta-iteration
  and the learner's own update (MiniImagenet's clipping, TF1 Adam, MAML++'s schedules) applies them in
  cross-replica context, on every copy alike.

So the weights after N meta-iterations equal the single-device ones up to summation order (tests/test_distribute.py:
rtol 1e-5). Evaluation (the summaries, validation, `--train=False`) runs on the first device, as without it.

`--distribute=multi_worker` is the same learner path over processes (on one or several machines) with
`tf.distribute.MultiWorkerMirroredStrategy`, configured by the standard `TF_CONFIG` environment variable: the
replica ids above are global (worker w's local replica l is w * L + l), every worker reads the same seeded data
stream (so the same global meta-batch), and the meta-gradient is all-reduced over all of them. The strategy must
exist before TensorFlow initialises its context (`start_multi_worker`, called by main.py at import time). Only
the chief (`is_chief`: the task of type `chief`, or worker 0 without one) writes into --logdir.
"""
import json
import os

CPU = 'CPU'
TF_CONFIG = 'TF_CONFIG'
JOBS = ('chief', 'worker')          # the task types multi_worker trains with
EXAMPLE = ('TF_CONFIG=\'{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", '
           '"index": 0}}\'')
_multi_worker = None                # this process's MultiWorkerMirroredStrategy (one per process)


class Error(Exception):
    """A setting the devices cannot run; the message is one line '<what>; <how to fix>' (main.py: UsageError)."""


def split_cpu(count):
    """Splits the first physical CPU into `count` logical devices (`--cpu_devices`); nothing for count <= 1 unless
    it is already split. TensorFlow allows this only before it initialises its devices, once per process: raises
    Error when the devices are already initialised with another split. Returns the logical CPU names."""
    import tensorflow as tf
    cpu = tf.config.list_physical_devices(CPU)[0]
    current = tf.config.get_logical_device_configuration(cpu)
    have = len(current) if current else 1
    if have != count:
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
        except RuntimeError:
            raise Error(f'--cpu_devices={count}: TensorFlow already initialised its devices in this process with '
                        f'{have} CPU device(s); set --cpu_devices before anything uses TensorFlow (a fresh '
                        f'process)') from None
    return [d.name for d in tf.config.list_logical_devices(CPU)]


def set_tf32(enabled):
    """TF32 for float32 matrix products and convolutions on Ampere+ GPUs (`--tf32`): TensorFlow's default is on,
    which computes float32 products with a 10-bit mantissa; maml-tf2 turns it off unless asked (the original's
    float32 numbers). No effect on CPUs."""
    import tensorflow as tf
    if tf.config.experimental.tensor_float_32_execution_enabled() != bool(enabled):
        tf.config.experimental.enable_tensor_float_32_execution(bool(enabled))


def local_devices():
    """The devices `mirrored` replicates over: every GPU, else every logical CPU (see `split_cpu`)."""
    import tensorflow as tf
    gpus = tf.config.list_logical_devices('GPU')
    return [d.name for d in (gpus or tf.config.list_logical_devices(CPU))]


def tf_config(environ=None):
    """(cluster {job: [host:port, ...]}, task type, task index) of `TF_CONFIG` in `environ` (default os.environ).

    Raises Error (one line, '<what>; <how to fix>') when it is missing, not JSON, lacks `cluster` or `task`, has
    jobs other than chief / worker, more than one chief, an address that is not host:port, or a task that is not
    in the cluster."""
    raw = (os.environ if environ is None else environ).get(TF_CONFIG, '').strip()
    if not raw:
        raise Error(f'--distribute=multi_worker needs the {TF_CONFIG} environment variable (the cluster and this '
                    f'process\'s task); set it in every worker\'s environment, e.g. {EXAMPLE} ("index": 1 on the '
                    f'second machine)')
    try:
        spec = json.loads(raw)
    except ValueError as e:
        raise Error(f'{TF_CONFIG} is not JSON ({e}); set it to e.g. {EXAMPLE}') from None
    if not isinstance(spec, dict) or not isinstance(spec.get('cluster'), dict) or not spec['cluster'] \
            or not isinstance(spec.get('task'), dict):
        raise Error(f'{TF_CONFIG} needs a "cluster" (job -> host:port list) and a "task" (type, index); set it to '
                    f'e.g. {EXAMPLE}')
    cluster, task = spec['cluster'], spec['task']
    for job, addresses in cluster.items():
        if job not in JOBS:
            raise Error(f'{TF_CONFIG} has a {job!r} job; --distribute=multi_worker trains with "worker" (and '
                        f'optionally one "chief") tasks only: drop it from the cluster')
        if not isinstance(addresses, list) or not addresses:
            raise Error(f'{TF_CONFIG}\'s {job!r} job is not a list of host:port addresses; list them, e.g. '
                        f'["host0:12345", "host1:12345"]')
        for address in addresses:
            host, _, port = str(address).rpartition(':')
            if not host or not port.isdigit():
                raise Error(f'{TF_CONFIG}\'s {job!r} job has the address {address!r}, not host:port; write e.g. '
                            f'"host0:12345"')
    if len(cluster.get('chief', [])) > 1:
        raise Error(f'{TF_CONFIG} has {len(cluster["chief"])} chief tasks; keep one (or none: worker 0 is then the '
                    f'chief)')
    kind, index = task.get('type'), task.get('index', 0)
    if kind not in cluster or not isinstance(index, int) or isinstance(index, bool) \
            or not 0 <= index < len(cluster[kind]):
        jobs = ', '.join(f'{job} 0..{len(a) - 1}' for job, a in cluster.items())
        raise Error(f'{TF_CONFIG}\'s task {kind!r} {index!r} is not in its cluster ({jobs}); set "task" to this '
                    f'process\'s own entry, e.g. {{"type": "worker", "index": 0}}')
    return cluster, kind, index


def num_workers(environ=None):
    """How many processes train together under `TF_CONFIG` (chief + workers)."""
    return sum(len(a) for a in tf_config(environ)[0].values())


def is_chief(config, environ=None):
    """Whether this process writes into --logdir: always without multi_worker; with it, the task of type chief,
    or worker 0 when the cluster has no chief (TensorFlow's definition, multi_worker_util.is_chief)."""
    if config.distribute != 'multi_worker':
        return True
    cluster, kind, index = tf_config(environ)
    return kind == 'chief' or kind == 'worker' and index == 0 and 'chief' not in cluster


def task_name(environ=None):
    """'worker 1' / 'chief 0': this process's task in `TF_CONFIG`, for its messages."""
    _, kind, index = tf_config(environ)
    return f'{kind} {index}'


def start_multi_worker():
    """Creates this process's MultiWorkerMirroredStrategy from `TF_CONFIG` (once; returns it).

    Must run before TensorFlow initialises its context (main.py calls it at import time): the strategy configures
    the context's collective ops and starts this task's gRPC server; it waits there until every task of the
    cluster has started. Raises Error for a bad TF_CONFIG or an already initialised context."""
    global _multi_worker
    if _multi_worker is None:
        tf_config()
        import tensorflow as tf
        try:
            _multi_worker = tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as e:
            if 'program startup' not in str(e) and 'initialized' not in str(e):
                raise
            raise Error('--distribute=multi_worker: TensorFlow already initialised its context in this process, '
                        'and MultiWorkerMirroredStrategy must be created before; run main.py as a fresh process')
    return _multi_worker


def make_strategy(config):
    """The tf.distribute strategy of `config.distribute` ('mirrored': MirroredStrategy over `local_devices()`;
    'multi_worker': `start_multi_worker()`), or None for 'none'. Raises Error when the meta-batch does not split
    evenly over the replicas."""
    if config.distribute == 'none':
        return None
    if config.distribute == 'multi_worker':
        strategy = start_multi_worker()
        check_divisible(config.meta_batch_size, strategy.num_replicas_in_sync)
        return strategy
    import tensorflow as tf
    devices = local_devices()
    cross = tf.distribute.ReductionToOneDevice() if 'GPU' not in devices[0].upper() else None
    strategy = tf.distribute.MirroredStrategy(devices, cross_device_ops=cross)
    check_divisible(config.meta_batch_size, strategy.num_replicas_in_sync)
    return strategy


def all_workers_range(strategy, value):
    """(min, max) of the integer `value` over every replica of `strategy` (an all-gather: every worker must call
    it, and every worker gets the same answer)."""
    import tensorflow as tf
    values = strategy.gather(strategy.run(lambda: tf.constant([value], tf.int64)), axis=0)
    return int(tf.reduce_min(values)), int(tf.reduce_max(values))


def check_divisible(meta_batch_size, replicas):
    if meta_batch_size % replicas:
        raise Error(f'--meta_batch_size={meta_batch_size} does not split over {replicas} replicas; pass a multiple '
                    f'of {replicas} (the global meta-batch is the same whatever the replicas)')


def scope(strategy):
    """The strategy's scope (the learner's variables are created in it), or a no-op for None."""
    import contextlib
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def shard(tensor, replicas, replica_id):
    """Replica `replica_id`'s contiguous share [B/R, ...] of a meta-batch tensor [B, ...] (B a multiple of R)."""
    import tensorflow as tf
    b = int(tensor.shape[0])
    return tf.gather(tf.reshape(tensor, [replicas, b // replicas] + tensor.shape.as_list()[1:]), replica_id)


def distribute_learner(model, strategy):
    """Makes `model` (built under `scope(strategy)`) meta-train over the strategy's replicas; returns it.

    Replaces two members on the instance, nothing in its class: `meta_gradients` (the meta-batch split over the
    replicas, each running the class's own `meta_gradients` on its share in one compiled call, the gradients and
    per-step query losses all-reduced, so that `_metatrain_step`'s clipping and Adam apply the global
    meta-gradient) and `_compiled` (the meta-train steps that call it are traced as plain tf.functions: the
    all-reduce cannot live inside one XLA computation; each replica's share is still compiled with --xla).
    """
    if strategy is None:
        return model
    import tensorflow as tf
    import maml
    replicas = strategy.num_replicas_in_sync
    own_gradients = type(model).meta_gradients
    own_compiled = type(model)._compiled

    def meta_gradients(inputa, labela, inputb, labelb, num_updates=None):
        """(MetaOutput with total_losses2 [T] only, {name: global meta-gradient}); traced inside the step."""
        check_divisible(int(inputa.shape[0]), replicas)
        scale = 1.0 / replicas

        # A new function per trace of the step: it reads the learner's trace-time state (MAML++'s MSL and
        # first-order switches) as the single-device step does.
        @tf.function(jit_compile=model.config.xla)
        def replica_gradients(a, la, b, lb):
            out, grads = own_gradients(model, a, la, b, lb, num_updates)
            return out.total_losses2 * scale, {k: g * scale for k, g in grads.items()}

        def replica_fn(*batch):   # the global replica id: under multi_worker, worker w's replica l is w * L + l
            context = tf.distribute.get_replica_context()
            rid = context.replica_id_in_sync_group
            out = replica_gradients(*(shard(t, replicas, rid) for t in batch))
            return context.all_reduce(tf.distribute.ReduceOp.SUM, out)   # one batched all-reduce of them all

        reduced = strategy.run(replica_fn, args=(inputa, labela, inputb, labelb))
        total_losses2, grads = tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], reduced)
        fields = dict.fromkeys(maml.MetaOutput._fields)
        return maml.MetaOutput(**dict(fields, total_losses2=total_losses2)), grads

    def compiled(name, fn, jit):
        return own_compiled(model, name, fn, jit and not name.startswith('metatrain'))

    model.meta_gradients = meta_gradients
    model._compiled = compiled
    model.strategy = strategy
    return model


def unsupported(config):
    """Why `config` cannot run with --distribute (one line, '<what>; <how to fix>'), or None."""
    from config import INNER_LOOP
    if config.distribute == 'none':
        return None
    if config.method not in INNER_LOOP:
        return (f'--distribute={config.distribute} splits the tasks of an inner-loop learner ({", ".join(INNER_LOOP)}); '
                f'drop --distribute for --method={config.method}')
    if config.steps_per_execution > 1:
        return '--steps_per_execution runs one device\'s compiled loop; drop it or --distribute'
    if config.per_step_bn_stats:
        return ('--per_step_bn_stats updates its running statistics task after task on one device; drop it or '
                '--distribute')
    if config.pretrain_iterations or config.baseline:
        return '--distribute splits meta-training only; drop --pretrain_iterations / --baseline or --distribute'
    if config.distribute == 'multi_worker' and config.cpu_devices != 1:
        return ('--cpu_devices splits one process\'s CPU for --distribute=mirrored; multi_worker runs one CPU '
                'device per worker process: drop --cpu_devices')
    return None


def cluster_problem(config, environ=None):
    """Why `TF_CONFIG` (in `environ`, default os.environ) cannot run `config`'s --distribute=multi_worker (one line,
    '<what>; <how to fix>'), or None; None without multi_worker. Apart from `unsupported` (the flags alone), so
    that a documented command checks without a cluster. Training: the meta-batch must split over the workers."""
    if config.distribute != 'multi_worker':
        return None
    try:
        workers = num_workers(environ)
    except Error as e:
        return str(e)
    if config.train and config.meta_batch_size % workers:
        return (f'--meta_batch_size={config.meta_batch_size} does not split over the {workers} workers of '
                f'{TF_CONFIG}; pass a multiple of {workers} (of the workers times each one\'s GPUs)')
    return None

