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
"""
CPU = 'CPU'


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


def make_strategy(config):
    """The tf.distribute strategy of `config.distribute` ('mirrored': MirroredStrategy over `local_devices()`), or
    None for 'none'. Raises Error when the meta-batch does not split evenly over the replicas."""
    if config.distribute == 'none':
        return None
    import tensorflow as tf
    devices = local_devices()
    cross = tf.distribute.ReductionToOneDevice() if 'GPU' not in devices[0].upper() else None
    strategy = tf.distribute.MirroredStrategy(devices, cross_device_ops=cross)
    check_divisible(config.meta_batch_size, strategy.num_replicas_in_sync)
    return strategy


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

        def replica_fn(*batch):
            rid = tf.distribute.get_replica_context().replica_id_in_sync_group
            return replica_gradients(*(shard(t, replicas, rid) for t in batch))

        losses, grads = strategy.run(replica_fn, args=(inputa, labela, inputb, labelb))
        total_losses2 = strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
        grads = strategy.reduce(tf.distribute.ReduceOp.SUM, grads, axis=None)
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
    return None

