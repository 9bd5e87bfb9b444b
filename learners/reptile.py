"""Reptile (Nichol, Achiam, Schulman 2018) in TensorFlow 2, numerically as openai/supervised-reptile.

Semantics of the reference code, flag for flag (its names in brackets):
- Inner loop: `inner_iters` steps of Adam(beta1=0, beta2=0.999, eps=1e-8, lr `update_lr` [--learning-rate]) on
  mini-batches of `inner_batch` drawn without replacement, cycling through shuffles of the task's examples (a
  batch may span two shuffles); each step minimises the **sum** of the per-example losses over its batch.
- The Adam slots and step count (`beta1_power`/`beta2_power`) are never reset: they carry over from task to task
  and across meta-iterations (the reference resets and interpolates `tf.trainable_variables()` only).
- Outer step: theta <- theta + epsilon * (mean over the B tasks of the adapted weights - theta), with epsilon linear
  from `meta_step` to `meta_step_final` over `metatrain_iterations` (its train.py).
- Evaluation: `eval_iters` Adam steps of `eval_batch` on the support set from the current state (Adam slots
  included), then each query predicted in a batch of the whole support set + that query (batch norm statistics
  over those rows), or all queries in one batch with `transductive`; the whole state is restored afterwards.
- `protocol='reptile'`: its networks (Omniglot 4x [conv 64 3x3 stride 2 -> BN(gamma, beta) -> ReLU] -> dense,
  MiniImagenet 4x [conv 32 3x3 -> BN -> max-pool 2/2 'SAME' -> ReLU] -> dense), batch norm always on batch
  statistics, gamma and beta adapted like every weight. `protocol='maml'`: MAML's network (maml.MAML's variables
  and forward pass), all its variables adapted in the inner loop.

Tasks arrive in MAML's batch format: a training task's examples are the rows of `inputa` (`inputb` is unused in
training); an evaluation task's support set is `inputa`, its queries `inputb`. The inner loop runs the tasks one
after the other (the shared Adam state makes their order matter), inside one compiled step.

The mini-batch shuffles come from stateless random ops: in training seeded by (`rng_seed`, `meta_iteration`),
both checkpointed, so a resumed run continues bit for bit; in evaluation by a fingerprint of the support set, so
`evaluate` is a pure function of the state and the task and changes nothing.
"""
import numpy as np
import tensorflow as tf

from infra import adam
from infra import loop
import config as config_lib
from config import Config
from maml import MAML, MetaOutput
from utils import glorot_uniform

BATCH_NORM_EPSILON = 1e-3      # tf.layers.batch_normalization default
ADAM_BETA2, ADAM_EPSILON = 0.999, 1e-8

# The reference's networks: (image size, channels, filters, conv stride, max-pool)
REPTILE_NETWORKS = {'omniglot': (28, 1, 64, 2, False), 'miniimagenet': (84, 3, 32, 1, True)}


def _suffix(i):
    """TF1 layer-name suffix of the i-th layer of a kind: '', '_1', '_2', ..."""
    return '' if i == 0 else '_' + str(i)


def reptile_conv_weights(rng, datasource, dim_output):
    """{TF1 variable name: initial value} of the reference's network, in `tf.trainable_variables()` order.

    `conv2d{_i}/kernel` [3, 3, C, F] and `dense/kernel` [features, N] Glorot-uniform (tf.layers' default),
    biases 0, `batch_normalization{_i}/gamma` 1 and `/beta` 0.
    """
    size, channels, filters, stride, max_pool = REPTILE_NETWORKS[datasource]
    weights = {}
    for i in range(4):
        weights['conv2d' + _suffix(i) + '/kernel'] = glorot_uniform(rng, [3, 3, channels if i == 0 else filters,
                                                                         filters])
        weights['conv2d' + _suffix(i) + '/bias'] = tf.zeros([filters])
        weights['batch_normalization' + _suffix(i) + '/gamma'] = tf.ones([filters])
        weights['batch_normalization' + _suffix(i) + '/beta'] = tf.zeros([filters])
        size = -(-size // 2)      # stride 2 'SAME', or max-pool 2/2 'SAME'
    weights['dense/kernel'] = glorot_uniform(rng, [size * size * filters, dim_output])
    weights['dense/bias'] = tf.zeros([dim_output])
    return weights


def reptile_forward(inp, weights, datasource):
    """Logits [G, n, N] of the reference's network for G independent batches of n flattened images
    [G, n, H*W*C] (row-major H, W, C); batch norm uses each batch's own statistics (training mode)."""
    size, channels, _, stride, max_pool = REPTILE_NETWORKS[datasource]
    groups, rows = inp.shape[0], inp.shape[1]
    hidden = tf.reshape(inp, [groups * rows, size, size, channels])
    for i in range(4):
        s = _suffix(i)
        hidden = tf.nn.conv2d(hidden, weights['conv2d' + s + '/kernel'], stride, 'SAME') \
            + weights['conv2d' + s + '/bias']
        per_group = tf.reshape(hidden, [groups, rows] + hidden.shape[1:].as_list())
        mean, variance = tf.nn.moments(per_group, [1, 2, 3], keepdims=True)
        per_group = tf.nn.batch_normalization(per_group, mean, variance, weights['batch_normalization' + s + '/beta'],
                                              weights['batch_normalization' + s + '/gamma'], BATCH_NORM_EPSILON)
        hidden = tf.reshape(per_group, [groups * rows] + hidden.shape[1:].as_list())
        if max_pool:
            hidden = tf.nn.max_pool2d(hidden, 2, 2, 'SAME')
        hidden = tf.nn.relu(hidden)
    hidden = tf.reshape(hidden, [groups, rows, int(np.prod(hidden.shape[1:]))])
    return tf.matmul(hidden, weights['dense/kernel']) + weights['dense/bias']


def mini_batch_indices(seed, num_tasks, num_examples, batch_size, num_batches):
    """[num_tasks, num_batches, batch_size] int32 row indices: per task, `num_batches` consecutive mini-batches
    of a sequence of random permutations of range(num_examples) (the reference's `_mini_batches` without
    replacement: a batch may run from one shuffle into the next). `seed`: int64 [2] of a stateless RNG."""
    epochs = -(-batch_size * num_batches // num_examples)
    keys = tf.random.stateless_uniform([num_tasks, epochs, num_examples], seed, alg='philox')
    order = tf.reshape(tf.argsort(keys, axis=-1, stable=True), [num_tasks, epochs * num_examples])
    return tf.reshape(order[:, :batch_size * num_batches], [num_tasks, num_batches, batch_size])


def meta_step_size(iteration, config):
    """epsilon of meta-iteration `iteration` (0-based), float64: linear from meta_step to meta_step_final over
    metatrain_iterations, as the reference's train.py (`frac_done = i / meta_iters`)."""
    frac = tf.cast(iteration, tf.float64) / float(config.metatrain_iterations)
    return frac * config.meta_step_final + (1.0 - frac) * config.meta_step


def reptile_update(old, total, num_tasks, epsilon):
    """The outer step {name: old + (total / num_tasks - old) * epsilon}: `total` the sum of the tasks' adapted
    weights, epsilon cast to the weights' dtype first (the reference: numpy float32 `interpolate_vars` of
    `average_vars`)."""
    return {k: old[k] + (total[k] / tf.cast(num_tasks, old[k].dtype) - old[k]) * tf.cast(epsilon, old[k].dtype)
            for k in old}


def _fingerprint(inp):
    """int64 hash of a float tensor's bits (seeds the evaluation shuffles of a task without any state)."""
    bits = tf.cast(tf.bitcast(tf.cast(inp, tf.float32), tf.int32), tf.int64)
    bits = tf.reshape(bits, [-1])
    position = tf.range(tf.size(bits, tf.int64), dtype=tf.int64) % 1000003 + 1
    return tf.reduce_sum(bits * position)


class Reptile(tf.Module):
    """The learner: its network's variables (`weights`), the inner optimizer, the meta-iteration counter and
    the seed of its mini-batch shuffles; `metatrain_step` and `evaluate` as main.py expects (see
    notes_lead/interface.md), `train_on_batches` / `adapt_on_batches` / `predict` for explicit batches (golden)."""
    net_class = MAML     # the network of --protocol=maml (networks/ puts a Keras model's MAML here)

    trains_on_tasks, summarizes_every_task, adapts = True, False, True   # see maml.MAML
    batch_split = 'tasks'
    summary_updates = staticmethod(lambda config: None)   # the prints report after --eval_iters steps

    @staticmethod
    def meta_train_shots(config):
        """--train_shots (its task is all support), else K."""
        return config.train_shots if config.train_shots > 0 else config.update_batch_size

    @staticmethod
    def train_samples_per_class(config):
        """train_shots + 1 example per class for the summaries, which the step does not see."""
        return Reptile.meta_train_shots(config) + 1

    def __init__(self, dim_input=1, dim_output=1, test_num_updates=5, config=Config(), dtype=tf.float32):
        super().__init__(name='reptile')
        self.config = config
        self.dim_input, self.dim_output = dim_input, dim_output
        self.test_num_updates = test_num_updates
        self.dtype = dtype
        self.classification = not config_lib.regression(config)
        self.train_shots = config.train_shots if config.train_shots > 0 else config.update_batch_size
        if config.protocol == 'reptile':
            if config.datasource not in REPTILE_NETWORKS:
                raise ValueError(f'--protocol=reptile needs --datasource=omniglot or miniimagenet, '
                                 f'not {config.datasource}')
            rng = tf.random.Generator.from_seed(config.seed) if config.seed >= 0 \
                else tf.random.Generator.from_non_deterministic_state()
            with tf.name_scope('model'):
                self.weights = {k: tf.Variable(tf.cast(v, dtype), name=k)
                                for k, v in reptile_conv_weights(rng, config.datasource, dim_output).items()}
            self.net = None
        else:   # MAML's network: its weights and forward pass (its own Adams stay unused)
            self.net = self.net_class(dim_input, dim_output, test_num_updates, config, dtype=dtype)
            self.weights = dict(self.net.meta_variables)
        self.optimizer = None if config.inner_sgd else adam.Adam(
            self.weights, config.update_lr, beta1=0.0, beta2=ADAM_BETA2, epsilon=ADAM_EPSILON, name='Adam')
        seed = config.seed if config.seed >= 0 else int(np.random.SeedSequence().generate_state(1)[0])
        self.rng_seed = tf.Variable(tf.constant(seed, tf.int64), trainable=False, name='rng_seed')
        self.meta_iteration = tf.Variable(tf.constant(0, tf.int64), trainable=False, name='meta_iteration')
        self._functions = {}
        self._compiled_step = tf.function(self._inner_step, jit_compile=config.xla)

    def checkpoint_items(self):
        """{name: trackable}: weights, the inner Adam (slots and beta powers), the meta-iteration counter (epsilon
        schedule, shuffles) and the shuffle seed: everything a resumed run needs to continue bit for bit."""
        items = dict(weights=self.weights, meta_iteration=self.meta_iteration, rng_seed=self.rng_seed)
        if self.optimizer is not None:
            items['inner_optimizer'] = self.optimizer
        return items

    def state_variables(self):
        """{TF1-style name: variable} of the whole state the inner loop changes: the weights, then Adam's
        `<name>/Adam` (m), `<name>/Adam_1` (v), `beta1_power`, `beta2_power` (what `evaluate` restores)."""
        state = dict(self.weights)
        if self.optimizer is not None:
            for k in self.weights:
                state[k + '/Adam'] = self.optimizer.m[k]
                state[k + '/Adam_1'] = self.optimizer.v[k]
            state['beta1_power'] = self.optimizer.beta1_power
            state['beta2_power'] = self.optimizer.beta2_power
        return state

    # ---------------------------------------------------------------- network and loss
    def forward(self, inp, weights=None):
        """Outputs [G, n, dim_output] of the current weights (or of `weights`, {name: tensor} as `self.weights`)
        for G independent batches [G, n, dim_input] (batch-norm statistics per batch)."""
        if self.net is None:
            return reptile_forward(inp, self.weights if weights is None else weights, self.config.datasource)
        groups = inp.shape[0]
        if weights is None:
            return self.net.forward(inp, {k: tf.broadcast_to(v, [groups] + v.shape.as_list())
                                          for k, v in self.net.weights.items()})
        # MAML's network reads its normalisation parameters from `norm_weights`: those of `weights` for this call
        norm_weights = self.net.norm_weights
        self.net.__dict__['norm_weights'] = {k: weights[k] for k in norm_weights}
        try:
            return self.net.forward(inp, {k: tf.broadcast_to(weights[k], [groups] + weights[k].shape.as_list())
                                          for k in self.net.weights})
        finally:
            self.net.__dict__['norm_weights'] = norm_weights

    def example_losses(self, outputs, labels):
        """Per-example losses [..., n]: sparse softmax cross-entropy (labels int [..., n]) or squared error
        (labels [..., n, 1]). The inner step minimises their sum over the batch, as the reference."""
        if self.classification:
            return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=outputs)
        return tf.reduce_sum(tf.square(outputs - labels), -1)

    def _labels(self, labels):
        """MAML's one-hot labels [..., n, N] as the class indices [..., n] int32 (regression: unchanged)."""
        return tf.argmax(labels, -1, output_type=tf.int32) if self.classification else labels

    # ---------------------------------------------------------------- inner loop
    def inner_step(self, inp, labels):
        """One inner step on a mini-batch [b, dim_input] (Adam, or plain SGD with `inner_sgd`), in place.
        Returns the per-example losses [b] before the step. A function of its own, compiled with XLA if
        `config.xla`, that the loops of `metatrain_step` / `evaluate` call (see `_compiled`)."""
        return self._compiled_step(inp, labels)

    def _inner_step(self, inp, labels):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(list(self.weights.values()))
            losses = self.example_losses(self.forward(inp[None]), labels[None])[0]
            total = tf.reduce_sum(losses)
        grads = tape.gradient(total, self.weights, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        if self.optimizer is None:
            for k, var in self.weights.items():
                var.assign_sub(self.config.update_lr * grads[k])
        else:
            self.optimizer.apply_gradients(grads)
        return losses

    def sgd_step(self, weights, inp, labels):
        """`inner_step` with --inner_sgd as a function of the weights {name: tensor}: (weights - update_lr *
        gradient of the summed losses of the mini-batch [b, dim_input], the per-example losses [b] before the
        step). Changes nothing; --distribute's replicas adapt their tasks with it (compiled with XLA if
        `config.xla`, as `inner_step`)."""
        if 'sgd_step' not in self._functions:
            def step(weights, inp, labels):
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    tape.watch(list(weights.values()))
                    losses = self.example_losses(self.forward(inp[None], weights), labels[None])[0]
                    total = tf.reduce_sum(losses)
                grads = tape.gradient(total, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO)
                return {k: w - self.config.update_lr * grads[k] for k, w in weights.items()}, losses
            self._functions['sgd_step'] = tf.function(step, jit_compile=self.config.xla)
        return self._functions['sgd_step'](weights, inp, labels)

    def inner_loop(self, inputs, labels):
        """`S` inner steps on mini-batches [S, b, dim_input] in order, in place; returns the losses [S, b]."""
        inputs, labels = tf.convert_to_tensor(inputs, self.dtype), tf.convert_to_tensor(labels)
        steps = inputs.shape[0]
        losses = tf.TensorArray(self.dtype, size=steps)
        for j in tf.range(steps):
            losses = losses.write(j, self.inner_step(inputs[j], labels[j]))
        return losses.stack()

    def train_on_batches(self, inputs, labels, epsilon, record=False):
        """One Reptile meta-iteration on explicit mini-batches [B, S, b, dim_input] (labels [B, S, b]), in place.

        Each task starts from the weights before the step and from the optimizer state the previous task left;
        then theta <- theta + epsilon * (mean_k theta_k - theta), the mean summed in task order as numpy does.
        Returns the per-example losses [B, S, b] before each step, and with `record` also {state name: [B, ...]}
        of the state at the end of each task (before the weights are reset).
        """
        inputs, labels = tf.convert_to_tensor(inputs, self.dtype), tf.convert_to_tensor(labels)
        tasks = inputs.shape[0]
        old = {k: v.read_value() for k, v in self.weights.items()}
        total = {k: tf.zeros_like(v) for k, v in old.items()}
        losses = tf.TensorArray(self.dtype, size=tasks)
        names = list(self.state_variables())
        ends = {k: tf.TensorArray(v.dtype, size=tasks) for k, v in self.state_variables().items()} if record else {}
        for t in tf.range(tasks):
            for k, var in self.weights.items():
                var.assign(old[k])
            losses = losses.write(t, self.inner_loop(inputs[t], labels[t]))
            state = self.state_variables()
            total = {k: total[k] + state[k].read_value() for k in total}
            if record:
                ends = {k: ends[k].write(t, state[k].read_value()) for k in names}
        new = reptile_update(old, total, tasks, epsilon)
        for k, var in self.weights.items():
            var.assign(new[k])
        if record:
            return losses.stack(), {k: a.stack() for k, a in ends.items()}
        return losses.stack()

    # ---------------------------------------------------------------- prediction and adaptation
    def predict(self, support, query, transductive=None):
        """Outputs for the queries [Q, dim_input] with the current weights: non-transductive, each query in a
        batch of the whole support set [S, dim_input] + that query -> [Q, S+1, dim_output] (the query's own
        row is [:, -1]); transductive, all queries in one batch -> [1, Q, dim_output]."""
        transductive = self.config.transductive if transductive is None else transductive
        support, query = tf.convert_to_tensor(support, self.dtype), tf.convert_to_tensor(query, self.dtype)
        if transductive:
            return self.forward(query[None])
        groups = tf.concat([tf.broadcast_to(support[None], [query.shape[0]] + support.shape.as_list()),
                            query[:, None]], 1)
        return self.forward(groups)

    def _query_outputs(self, support, query):
        """[Q, dim_output]: each query's prediction as the configured mode gives it."""
        out = self.predict(support, query)
        return out[0] if self.config.transductive else out[:, -1]

    def adapt_on_batches(self, support, query, inputs, labels, every_step=True):
        """Evaluation adaptation of one task on explicit mini-batches [S, b, dim_input] of the support set, in
        place (the caller restores the state). Returns (query outputs [S+1, Q, dim_output] before and after each
        step, or [1, Q, ...] after the last step only unless `every_step`; inner losses [S, b])."""
        inputs, labels = tf.convert_to_tensor(inputs, self.dtype), tf.convert_to_tensor(labels)
        steps = inputs.shape[0]
        outs = tf.TensorArray(self.dtype, size=steps + 1 if every_step else 1)
        if every_step:
            outs = outs.write(0, self._query_outputs(support, query))
        losses = tf.TensorArray(self.dtype, size=steps)
        for j in tf.range(steps):
            losses = losses.write(j, self.inner_step(inputs[j], labels[j]))
            if every_step:
                outs = outs.write(j + 1, self._query_outputs(support, query))
        if not every_step:
            outs = outs.write(0, self._query_outputs(support, query))
        return outs.stack(), losses.stack()

    # ---------------------------------------------------------------- learner interface
    def _metatrain_step(self, inputa, labela, inputb, labelb):
        tasks, rows = inputa.shape[0], inputa.shape[1]
        iteration = self.meta_iteration.read_value()
        index = mini_batch_indices(tf.stack([self.rng_seed, iteration]), tasks, rows,
                                   self.config.inner_batch, self.config.inner_iters)
        inputs = tf.gather(inputa, index, batch_dims=1)
        labels = tf.gather(self._labels(labela), index, batch_dims=1)
        losses = self.train_on_batches(inputs, labels, meta_step_size(iteration, self.config))
        self.meta_iteration.assign_add(1)
        return tf.reduce_mean(losses)

    def _evaluate(self, inputa, labela, inputb, labelb):
        tasks, rows = inputa.shape[0], inputa.shape[1]
        labela, labelb = self._labels(labela), self._labels(labelb)
        state = self.state_variables()
        saved = {k: v.read_value() for k, v in state.items()}
        losses = tf.TensorArray(self.dtype, size=tasks)
        outputs = tf.TensorArray(self.dtype, size=tasks)
        for t in tf.range(tasks):
            for k, var in state.items():
                var.assign(saved[k])
            seed = tf.stack([self.rng_seed, _fingerprint(inputa[t])])
            index = mini_batch_indices(seed, 1, rows, self.config.eval_batch, self.config.eval_iters)[0]
            out, _ = self.adapt_on_batches(inputa[t], inputb[t], tf.gather(inputa[t], index),
                                           tf.gather(labela[t], index))
            outputs = outputs.write(t, out)
            losses = losses.write(t, self.example_losses(out, tf.broadcast_to(labelb[t], out.shape[:-1])))
        for k, var in state.items():
            var.assign(saved[k])
        outputs = tf.transpose(outputs.stack(), [1, 0, 2, 3])   # [T+1, B, Q, out]
        losses = tf.transpose(losses.stack(), [1, 0, 2])         # [T+1, B, Q]
        task_losses = tf.reduce_mean(losses, -1)                 # [T+1, B]: mean over the queries
        total_losses = tf.reduce_mean(task_losses, -1)           # [T+1]
        acc = total_acc = None
        if self.classification:
            correct = tf.equal(tf.argmax(outputs, -1, output_type=tf.int32), labelb[None])
            acc = tf.reduce_mean(tf.cast(correct, tf.float32), -1)   # [T+1, B]
            total_acc = tf.reduce_mean(acc, -1)
        return MetaOutput(total_losses[0], total_losses[1:], None if acc is None else total_acc[0],
                          None if acc is None else total_acc[1:], losses[0], losses[1:], outputs[0], outputs[1:])

    def _compiled(self, name, fn):
        """`fn` as a tf.function run by TensorFlow's executor; its inner steps are compiled with XLA if
        `config.xla` (`inner_step`). XLA on CPU ran the whole step's while loops (tasks x inner steps, the 50
        evaluation steps) 5-10x slower than the executor (2.0 s vs 0.37 s a 5-way 1-shot meta-step), and
        unrolling them took 1.5-3 minutes of compilation per input shape."""
        if name not in self._functions:
            self._functions[name] = tf.function(fn)
        return self._functions[name]

    def metatrain_step(self, inputa, labela, inputb, labelb):
        """One meta-iteration on the B tasks whose examples are the rows of `inputa` [B, N*train_shots, dim]
        (`labela` one-hot; `inputb`/`labelb` unused). Returns the mean per-example inner-loop loss, each measured
        before its inner step. Compiled once (see `_compiled`)."""
        return self._compiled('metatrain', self._metatrain_step)(inputa, labela, inputb, labelb)

    def metatrain_steps(self, inputa, labela, inputb, labelb, count):
        """`count` meta-iterations on the first `count` of the stacked meta-batches [N, B, ...] in one call
        (loop.py; compiled as `metatrain_step`); returns their objectives [N] (0 from `count` on)."""
        fn = self._compiled('metatrain_steps', loop.repeated(self._metatrain_step))
        return fn(inputa, labela, inputb, labelb, tf.constant(0), tf.constant(count))

    def evaluate(self, inputa, labela, inputb, labelb):
        """MetaOutput of `eval_iters` adaptation steps on each task's support set `inputa`, measured on its
        queries `inputb`: total_loss1 / total_accuracy1 before adaptation, total_losses2 / total_accuracies2
        [eval_iters] after each step (mean over queries, then tasks); lossesa [B, Q], lossesb [T, B, Q],
        outputas [B, Q, N], outputbs [T, B, Q, N]. Every task starts from the current state; the state is
        restored, so this changes nothing."""
        return self._compiled('evaluate', self._evaluate)(inputa, labela, inputb, labelb)
