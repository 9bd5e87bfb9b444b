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

The other learners split what their batch is (issue 26), with the same global batch, seed and update:

* reptile (`--inner_sgd`): its meta-batch of tasks, contiguous shares as above; each replica adapts its tasks from
  the same weights (`Reptile.sgd_step`), the sum of their adapted weights (and their inner losses) is
  all-reduced, and the outer step theta + epsilon (mean - theta) runs once, in cross-replica context. With its
  default inner Adam the tasks cannot be split: each task starts from the Adam state (second moments, step
  count) the previous task left, so task t depends on tasks 0..t-1 (`unsupported` says so in one line).
* protonet / matchingnet: the query rows of every episode (replica r: rows r*Q//R .. (r+1)*Q//R - 1, uneven
  when R does not divide Q), every replica embedding the whole support set (the prototypes, the attention's
  keys) beside its queries; each replica's loss is its queries' cross-entropy summed / (B * Q), so the sum over
  the replicas is the single device's mean; the gradients are all-reduced and Adam runs once.
* baseline / baseline_pp: the rows of each pre-training mini-batch, the same way (loss summed / batch).

Batch norm over a split batch keeps the single device's statistics (`synced_moments`): each layer's moments are
those of all the replicas' rows together (two all-reduces per layer; the support set, computed on every
replica, counted once), and their gradient is all-reduced too (tf.distribute's all_reduce is differentiable),
so every replica's loss reaches the statistics of the others' rows as on one device. The running averages move
once, from those statistics. These steps run as plain tf.functions (the all-reduces sit inside the forward
pass, which XLA cannot hold); evaluation stays on the first device, compiled as before.

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


def batch_split(config):
    """What --distribute splits over the replicas for `config`'s learner, its `batch_split` trait: 'tasks' (the
    meta-batch), 'queries' (each episode's query rows) or 'rows' (each pre-training mini-batch's rows)."""
    import learners
    return learners.learner_class(config).batch_split


def make_strategy(config):
    """The tf.distribute strategy of `config.distribute` ('mirrored': MirroredStrategy over `local_devices()`;
    'multi_worker': `start_multi_worker()`), or None for 'none'. Raises Error when the batch does not split
    over the replicas (`check_split`)."""
    if config.distribute == 'none':
        return None
    if config.distribute == 'multi_worker':
        strategy = start_multi_worker()
    else:
        import tensorflow as tf
        devices = local_devices()
        cross = tf.distribute.ReductionToOneDevice() if 'GPU' not in devices[0].upper() else None
        strategy = tf.distribute.MirroredStrategy(devices, cross_device_ops=cross)
    check_split(config, strategy.num_replicas_in_sync)
    return strategy


def check_split(config, replicas):
    """Raises Error when `config`'s training batch does not split over `replicas`: the meta-batch of a learner
    that splits tasks must be a multiple of them (equal shares, as MAML's); a row split needs at least one row
    per replica (the mini-batch of the baselines; the query rows of the metric learners are checked when the
    step sees them)."""
    split = batch_split(config)
    if split == 'rows':
        if config.batch_size < replicas:
            raise Error(f'--batch_size={config.batch_size} does not split over {replicas} replicas; pass at least '
                        f'{replicas} (one row per replica; the global mini-batch is the same whatever the replicas)')
    elif split == 'tasks':
        check_divisible(config.meta_batch_size, replicas)


def all_workers_range(strategy, value):
    """(min, max) of the integer `value` over every replica of `strategy` (an all-gather: every worker must call
    it, and every worker gets the same answer)."""
    import tensorflow as tf
    values = strategy.gather(strategy.run(lambda: tf.constant([value], tf.int64)), axis=0)
    return int(tf.reduce_min(values)), int(tf.reduce_max(values))


def check_rows(rows, replicas, what):
    """Raises Error when `rows` rows cannot give every one of `replicas` replicas at least one."""
    if rows < replicas:
        raise Error(f'{rows} {what} do not split over {replicas} replicas; use at least {replicas} (e.g. more '
                    f'query examples per class, --num_query) or fewer replicas')


def row_share(rows, replicas, replica_id):
    """Replica `replica_id`'s contiguous share of `rows` rows, a slice: rows*r//R .. rows*(r+1)//R - 1 (shares
    differ by at most one row when R does not divide `rows`)."""
    return slice(rows * replica_id // replicas, rows * (replica_id + 1) // replicas)


def replica_id(context):
    """The global id (a Python int) of the replica whose `context` (tf.distribute.ReplicaContext) runs: its
    share of a batch is chosen while tracing, so that uneven shares have static shapes."""
    import tensorflow as tf
    rid = tf.get_static_value(context.replica_id_in_sync_group)
    if rid is None:
        raise Error('the replica id is not known while tracing; this strategy cannot split rows')
    return int(rid)


def synced_moments(counted, rows):
    """A `moments` for learners.protonet.embed on one replica: each task's mean and biased variance over the
    rows of every replica together, as one device takes them over the whole batch (utils.moments_tf10: shifted
    by the mean, variance E[(x-s)^2] - E[x-s]^2, whose second term keeps the -2/n^2 Hessian term).

    `counted`: per row of this replica's maps, 1.0 if this replica counts it, 0.0 for a copy of a row another
    replica counts (ProtoNets' support set on replicas > 0); `rows`: the rows of the whole batch. Returns a
    function h [B, rows_here, H, W, F] -> (mean, variance [B, 1, 1, 1, F], count rows*H*W). Two all-reduces per
    call: the sums for the shift (no gradient, as moments_tf10's stop-gradient shift) and the shifted first and
    second moments, whose gradient tf.distribute all-reduces in turn, so each replica's loss reaches the rows
    of the others through the statistics."""
    import tensorflow as tf

    def moments(h):
        context = tf.distribute.get_replica_context()
        weight = tf.reshape(tf.constant(counted, h.dtype), [1, -1, 1, 1, 1])
        count = rows * h.shape[2] * h.shape[3]
        divisor = tf.constant(1.0 / count, h.dtype)
        axes = [1, 2, 3]
        total = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                   tf.stop_gradient(tf.reduce_sum(h * weight, axes, keepdims=True)))
        shift = tf.stop_gradient(total * divisor)
        shifted = h - shift
        first, second = context.all_reduce(tf.distribute.ReduceOp.SUM, [
            tf.reduce_sum(shifted * weight, axes, keepdims=True),
            tf.reduce_sum(tf.square(shifted) * weight, axes, keepdims=True)])
        shifted_mean = first * divisor
        return shifted_mean + shift, second * divisor - tf.square(shifted_mean), count
    return moments


def _first(strategy, values):
    """Replica 0's component of every (all-reduced, so equal) per-replica value in the structure `values`."""
    import tensorflow as tf
    return tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], values)


def _row_split_gradients(strategy, variables, share_loss, rows, support=0):
    """The gradient function of a row-split learner: `share_loss(rows slice, moments) -> (loss, stats)` runs on
    every replica with its share of `rows` rows (plus `support` rows every replica embeds and the first counts),
    its gradient for `variables` (a dict, read in replica context) and loss are all-reduced (SUM), and replica
    0's results come back: (loss, {name: gradient}, batch statistics [(mean, variance, count)] per layer)."""
    import tensorflow as tf
    replicas = strategy.num_replicas_in_sync
    counts = []

    def replica_fn():
        context = tf.distribute.get_replica_context()
        rid = replica_id(context)
        share = row_share(rows, replicas, rid)
        counted = [float(rid == 0)] * support + [1.0] * (share.stop - share.start)
        with tf.GradientTape() as tape:
            loss, stats = share_loss(share, synced_moments(counted, support + rows))
        grads = tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        counts[:] = [n for _, _, n in stats]
        loss, grads = context.all_reduce(tf.distribute.ReduceOp.SUM, (loss, grads))
        return loss, grads, [(m, v) for m, v, _ in stats]

    loss, grads, stats = _first(strategy, strategy.run(replica_fn))
    return loss, grads, [(m, v, n) for (m, v), n in zip(stats, counts)]


def _distribute_metric_learner(model, strategy):
    """protonet / matchingnet: `gradients` with each episode's query rows split over the replicas."""
    def gradients(inputa, labela, inputb, labelb):
        queries = int(inputb.shape[1])
        check_rows(queries, strategy.num_replicas_in_sync, 'query rows per episode')

        def share_loss(rows, moments):
            return model.query_share_loss(inputa, labela, inputb, labelb, rows, moments)
        return _row_split_gradients(strategy, model.weights, share_loss, queries, support=int(inputa.shape[1]))
    model.gradients = gradients


def _distribute_baseline(model, strategy):
    """baseline / baseline_pp: `pretrain_gradients` with the mini-batch's rows split over the replicas."""
    def pretrain_gradients(images, labels):
        rows = int(images.shape[0])
        check_rows(rows, strategy.num_replicas_in_sync, 'rows of the mini-batch (--batch_size)')

        def share_loss(share, moments):
            return model.row_share_loss(images, labels, share, moments)
        return _row_split_gradients(strategy, model.train_variables, share_loss, rows)
    model.pretrain_gradients = pretrain_gradients


def _distribute_reptile(model, strategy):
    """reptile (--inner_sgd): `train_on_batches` with the tasks split over the replicas (see the module)."""
    import tensorflow as tf
    from learners import reptile
    replicas = strategy.num_replicas_in_sync

    def train_on_batches(inputs, labels, epsilon, record=False):
        """The Reptile meta-iteration of `Reptile.train_on_batches` (without `record`) over the replicas: each
        adapts its tasks [B/R, S, b, dim] with `sgd_step` from the weights before the step; the sum of the
        adapted weights and the inner losses [B, S, b] (zeros outside each replica's tasks) are all-reduced, and
        the outer step is applied once. Returns the losses [B, S, b]."""
        if record:
            raise Error('record=True records one device\'s tasks (the golden tests); call it without --distribute')
        inputs, labels = tf.convert_to_tensor(inputs, model.dtype), tf.convert_to_tensor(labels)
        tasks, steps = int(inputs.shape[0]), int(inputs.shape[1])
        check_divisible(tasks, replicas)
        old = {k: v.read_value() for k, v in model.weights.items()}

        def replica_fn():
            context = tf.distribute.get_replica_context()
            share = row_share(tasks, replicas, replica_id(context))
            start = {k: v.read_value() for k, v in model.weights.items()}
            total = {k: tf.zeros_like(v) for k, v in start.items()}
            losses = []
            for t in range(share.start, share.stop):
                weights = dict(start)
                task = []
                for j in range(steps):
                    weights, step_losses = model.sgd_step(weights, inputs[t, j], labels[t, j])
                    task.append(step_losses)
                losses.append(tf.stack(task))
                total = {k: total[k] + weights[k] for k in total}
            pad = tf.zeros_like(losses[0])[None]
            losses = tf.concat([tf.repeat(pad, share.start, 0), tf.stack(losses),
                                tf.repeat(pad, tasks - share.stop, 0)], 0)
            return context.all_reduce(tf.distribute.ReduceOp.SUM, (total, losses))

        total, losses = _first(strategy, strategy.run(replica_fn))
        new = reptile.reptile_update(old, total, tasks, epsilon)
        for k, var in model.weights.items():
            var.assign(new[k])
        return losses
    model.train_on_batches = train_on_batches
    # evaluate's inner steps change the (mirrored) weights in place, on every device: XLA cannot compile that
    # (a variable on another device), so they run as a plain tf.function
    model._compiled_step = tf.function(model._inner_step)


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
    if not hasattr(model, 'meta_gradients'):   # the learners that split otherwise (see the module)
        if hasattr(model, 'query_share_loss'):
            _distribute_metric_learner(model, strategy)
        elif hasattr(model, 'row_share_loss'):
            _distribute_baseline(model, strategy)
        else:
            _distribute_reptile(model, strategy)
        own = model._compiled

        def plain(name, fn, *jit):   # the training steps hold all-reduces: no XLA around them
            if name.startswith(('metatrain', 'pretrain')) and name not in model._functions:
                model._functions[name] = tf.function(fn)
            return own(name, fn, *jit)
        model._compiled = plain
        model.strategy = strategy
        return model
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
    if config.distribute == 'none':
        return None
    if config.method == 'reptile' and not config.inner_sgd:
        return (f'--distribute={config.distribute} cannot split Reptile\'s tasks with its inner Adam: each task '
                f'starts from the Adam state the previous task left; add --inner_sgd or drop --distribute')
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
    # (the learner, and so TensorFlow, is imported only when the meta-batch does not split)
    if config.train and config.meta_batch_size % workers and batch_split(config) == 'tasks':
        return (f'--meta_batch_size={config.meta_batch_size} does not split over the {workers} workers of '
                f'{TF_CONFIG}; pass a multiple of {workers} (of the workers times each one\'s GPUs)')
    return None

