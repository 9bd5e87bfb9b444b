"""MAML (Finn et al. 2017) in TensorFlow 2, numerically as the original cbfinn/maml `maml.py`.

The network is a pure function of (input, weights dict); fast weights are just a new dict of
tensors. `task_metalearn` adapts tasks with `num_updates` gradient steps, each taken under its
own `tf.GradientTape`; because those tapes run inside the caller's tape, the meta-gradient
differentiates through the inner gradients (second order) unless `stop_grad` cuts them.

Tasks are stacked: inputs are [B, rows, dim] and every weight carries a leading task axis
[B, ...] (the meta-parameters broadcast to B copies), so the sum of the B task losses has the
per-task gradients as its gradient and the whole meta-batch is one batched computation (on a CPU,
`task_groups` independent ones, so that both cores work). The reference path (`batched=False`) runs the same code one task at a time under `tf.map_fn`, as
the original did.
"""
import collections

import numpy as np
import tensorflow as tf

from infra import adam
from infra import loop
import config as config_lib
from config import Config
from utils import accuracy, conv_block, glorot_uniform, mse, normalize, random_normal, truncated_normal, xent

# Per-task results of `task_metalearn`; the meta-batch version stacks a leading task axis.
TaskOutput = collections.namedtuple(
    'TaskOutput', 'outputa outputbs lossa lossesb accuracya accuraciesb')
# Meta-batch results: totals as the original's summaries, plus the stacked per-task values.
#   total_loss1 ()  total_losses2 [T]  total_accuracy1 ()  total_accuracies2 [T]
#   lossesa [B, ...]  lossesb [T, B, ...]  outputas [B, rows, out]  outputbs [T, B, rows, out]
MetaOutput = collections.namedtuple(
    'MetaOutput', 'total_loss1 total_losses2 total_accuracy1 total_accuracies2 '
                  'lossesa lossesb outputas outputbs')

GRAD_CLIP_MINIIMAGENET = 10.0
COMPUTE_DTYPES = {'bfloat16': tf.bfloat16, 'float16': tf.float16}   # --precision other than float32


class MAML(tf.Module):
    """The model, its meta-learned variables, and the meta-train / pretrain / evaluation steps.

    `weights` holds the adapted parameters under the original keys (`conv1..conv4, b1..b4, w5,
    b5` or `w1, b1, ...`); `norm_weights` holds the normalisation parameters (`'<scope>/beta'`,
    `'<scope>/gamma'`), which are meta-learned but, as in the original, never adapted in the inner
    loop. Two separate TF1-style Adams: one for meta-training, one for pretraining.
    """

    # What main.py's loop asks a learner (docs/ARCHITECTURE.md, "The learner interface"); MAML's are the original's.
    trains_on_tasks = True          # meta-trains on meta-batches of tasks (else: `pretrain_step_on_batch` on mini-batches)
    summarizes_every_task = True    # the training summaries evaluate every task of the meta-batch (else the first)
    adapts = True                   # evaluation adapts with inner steps (else: T = 0, query accuracy only)
    batch_split = 'tasks'           # --distribute splits the meta-batch's tasks ('queries': each episode's query
                                    # rows; 'rows': each pre-training mini-batch's rows; infra/distribute.py)

    @staticmethod
    def summary_updates(config):
        """The inner step the training prints report (None: the last one evaluated)."""
        return config.num_updates

    @staticmethod
    def meta_train_shots(config):
        """Support examples per class of a meta-training task."""
        return config.update_batch_size

    @staticmethod
    def train_samples_per_class(config):
        """Examples per class of a meta-training task, or None for the original's (data_generator)."""
        return None

    def __init__(self, dim_input=1, dim_output=1, test_num_updates=5, config=Config(), dtype=tf.float32,
                 batched=True, task_groups=None):
        super().__init__(name='model')
        self.batched = batched
        self.task_groups = default_task_groups() if task_groups is None else task_groups
        self.config = config
        self.dim_input, self.dim_output = dim_input, dim_output
        self.test_num_updates = test_num_updates
        self.update_lr = config.update_lr
        self.dtype = dtype
        self.classification = not config_lib.regression(config)
        if self.classification:
            self.channels = config_lib.image_channels(config)
            self.img_size = int(np.sqrt(dim_input / self.channels))
        rng = tf.random.Generator.from_seed(config.seed) if config.seed >= 0 \
            else tf.random.Generator.from_non_deterministic_state()
        self.construct_network(rng)
        self.meta_variables = {**self.weights, **self.norm_weights}
        self.metatrain_optimizer = adam.Adam(self.meta_variables, config.meta_lr, name='Adam')
        self.pretrain_optimizer = adam.Adam(self.meta_variables, config.meta_lr, name='Adam_pretrain')
        self._functions = {}
        self.compute_dtype = COMPUTE_DTYPES.get(config.precision, dtype)
        self.loss_scale = config.loss_scale if self.compute_dtype == tf.float16 else None   # --loss_scale
        if self.compute_dtype != dtype:
            self._lower_precision()

    def construct_network(self, rng):
        """Chooses the network and creates its variables: sets `forward`, `weights` (adapted in the inner loop)
        and `norm_weights` (meta-learned, not adapted). A hook: networks/ plugs a Keras model in here."""
        config, dtype = self.config, self.dtype
        if self.classification and config.conv:
            self.dim_hidden = config.num_filters
            self.forward, self.construct_weights = self.forward_conv, self.construct_conv_weights
            norm_scopes = ['0', '1', '2', '3']
            norm_width = [self.dim_hidden] * 4
        else:
            self.dim_hidden = [256, 128, 64, 64] if self.classification else [40, 40]
            self.forward, self.construct_weights = self.forward_fc, self.construct_fc_weights
            # The original's fc scopes are '0', '2', '3', ...: normalize(..., scope=str(i+1)) for i >= 1.
            norm_scopes = ['0'] + [str(i + 1) for i in range(1, len(self.dim_hidden))]
            norm_width = list(self.dim_hidden)
        with tf.name_scope('model'):
            self.weights = {k: tf.Variable(tf.cast(v, dtype), name=k)
                            for k, v in self.construct_weights(rng).items()}
            self.norm_weights = {}
            if config.norm in ('batch_norm', 'layer_norm'):
                for scope, width in zip(norm_scopes, norm_width):
                    self.norm_weights[scope + '/beta'] = tf.Variable(tf.zeros([width], dtype), name=scope + '/beta')
                    if config.norm == 'layer_norm':
                        self.norm_weights[scope + '/gamma'] = tf.Variable(tf.ones([width], dtype),
                                                                          name=scope + '/gamma')

    def _lower_precision(self):
        """--precision=bfloat16 / float16: the network computes in `compute_dtype`, on the per-task (fast) weights,
        inputs and norm parameters cast on entry, and returns `dtype` outputs, so that the losses, the inner
        updates (fast weights stay float32), the meta-gradient and Adam are float32 (their gradients cross the
        casts). Replaces `forward` and `_norm` on the instance; the float32 path never comes here."""
        compute, full = self.compute_dtype, self.dtype
        forward, norm = self.forward, self._norm

        def cast(v):
            return tf.cast(v, compute) if isinstance(v, (tf.Tensor, tf.Variable)) and v.dtype == full else v

        def low_forward(inp, weights):
            return tf.cast(forward(cast(inp), {k: cast(v) for k, v in weights.items()}), full)

        self.forward = low_forward
        self._norm = lambda scope: {k: cast(v) for k, v in norm(scope).items()}

    def checkpoint_items(self):
        """{name: trackable} a checkpoint holds (the names are the checkpoint's keys; keep them stable)."""
        return dict(weights=self.weights, norm_weights=self.norm_weights,
                    metatrain_optimizer=self.metatrain_optimizer, pretrain_optimizer=self.pretrain_optimizer)

    # ---------------------------------------------------------------- weights
    def construct_fc_weights(self, rng):
        """fc weights `w1, b1, ...`: truncated normal (stddev 0.01) matrices, zero biases."""
        dims = [self.dim_input] + list(self.dim_hidden) + [self.dim_output]
        weights = {}
        for i in range(len(dims) - 1):
            weights['w' + str(i + 1)] = truncated_normal(rng, [dims[i], dims[i + 1]], 0.01)
            weights['b' + str(i + 1)] = tf.zeros([dims[i + 1]])
        return weights

    def construct_conv_weights(self, rng):
        """conv weights: Glorot-uniform 3x3 kernels, zero biases; `w5` N(0,1) for Omniglot,
        Glorot uniform on the flattened 5x5 map for MiniImagenet, as the original."""
        weights, k, f = {}, 3, self.dim_hidden
        for i, c_in in enumerate([self.channels, f, f, f]):
            weights['conv' + str(i + 1)] = glorot_uniform(rng, [k, k, c_in, f])
            weights['b' + str(i + 1)] = tf.zeros([f])
        if self.config.datasource == 'miniimagenet':
            weights['w5'] = glorot_uniform(rng, [f * 5 * 5, self.dim_output])
        else:
            weights['w5'] = random_normal(rng, [f, self.dim_output])
        weights['b5'] = tf.zeros([self.dim_output])
        return weights

    def tf1_names(self):
        """{key: TF1 variable name} for `meta_variables`, as the original graph named them
        (`model/conv1`, `model/Variable_3`, `model/0/beta`, ...): for TF1 checkpoints and goldens."""
        names, unnamed = {}, 0
        conv_net = self.classification and self.config.conv
        for key in self.weights:
            if conv_net and (key.startswith('conv') or key in ('w5', 'b5')):   # created with a name
                names[key] = 'model/' + key
            else:   # an unnamed tf.Variable: TF1 numbered them in creation order
                names[key] = 'model/Variable' + ('_' + str(unnamed) if unnamed else '')
                unnamed += 1
        names.update({key: 'model/' + key for key in self.norm_weights})
        return names

    # ---------------------------------------------------------------- network
    def _norm(self, scope):
        return {p: self.norm_weights[scope + '/' + p] for p in ('beta', 'gamma')
                if scope + '/' + p in self.norm_weights}

    def forward_fc(self, inp, weights):
        """Predictions / logits [B, rows, dim_output] of the fc net for input [B, rows, dim_input]
        and per-task weights [B, ...]."""
        n = len(self.dim_hidden)

        def dense(x, i):
            return tf.matmul(x, weights['w' + str(i)]) + weights['b' + str(i)][:, None, :]
        hidden = normalize(dense(inp, 1), self.config.norm, self._norm('0'))
        for i in range(1, n):
            hidden = normalize(dense(hidden, i + 1), self.config.norm, self._norm(str(i + 1)))
        return dense(hidden, n + 1)

    def forward_conv(self, inp, weights):
        """Logits [B, rows, dim_output] of the 4-block conv net for flattened images
        [B, rows, dim_input] (row-major H, W, C) and per-task weights [B, ...]."""
        b, rows = inp.shape[0], inp.shape[1]
        hidden = tf.reshape(inp, [b, rows, self.img_size, self.img_size, self.channels])
        for i in range(4):
            hidden = conv_block(hidden, weights['conv' + str(i + 1)], weights['b' + str(i + 1)],
                                self.config.norm, self._norm(str(i)), self.config.max_pool)
        if self.config.datasource == 'miniimagenet':
            hidden = tf.reshape(hidden, [b, rows, int(np.prod(hidden.shape[2:]))])
        else:
            hidden = tf.reduce_mean(hidden, [2, 3])
        return tf.matmul(hidden, weights['w5']) + weights['b5'][:, None, :]

    def loss_func(self, pred, label):
        """Per-task loss: scalar MSE (regression) or per-row cross-entropy / K (classification)."""
        if self.classification:
            return xent(pred, label, self.config.update_batch_size)
        return mse(pred, label)

    # ---------------------------------------------------------------- adaptation
    def _adapt(self, fast_weights, inputa, labela, step=0):
        """Inner step `step` (0-based): returns (new fast weights, outputa, lossa) with fast - inner_lr * grad.

        With `--remat` the step is one `tf.recompute_grad` block: the meta-gradient's backward pass recomputes
        its activations (and its inner gradient) from the fast weights it started from instead of keeping them,
        so memory holds one step's activations at a time, not num_updates' (the same values, more compute)."""
        if self.config.remat:
            return self._remat_adapt(fast_weights, inputa, labela, step)
        return self._adapt_step(fast_weights, inputa, labela, step)

    def _remat_adapt(self, fast_weights, inputa, labela, step):
        """`_adapt_step` as one block whose backward pass recomputes it (`--remat`; `tf.recompute_grad`'s scheme,
        whose forward pass would stop the inner tape: here the block runs as always, and the gradient graph reads
        only the block's inputs). Eagerly (no graph to free anything from) it is `_adapt_step`."""
        if tf.executing_eagerly():
            return self._adapt_step(fast_weights, inputa, labela, step)
        keys = list(fast_weights)
        n = len(keys)

        def run(args):
            new, output, loss = self._adapt_step(dict(zip(keys, args[:n])), args[n], args[n + 1], step)
            return [new[k] for k in keys] + [output, loss]

        @tf.custom_gradient
        def block(*args):
            def grad(*dresult, variables=None):
                # the recomputation depends on the incoming gradient, so that it runs in the backward pass and
                # XLA cannot merge it with the forward pass (as tf.recompute_grad does)
                first = tf.reshape(dresult[0], [-1])[:1]
                dep = tf.where(tf.reduce_all(tf.math.is_finite(first)), 0.0, 0.0)
                variables = list(variables or [])
                with tf.GradientTape() as tape:
                    again_args = [tf.identity(a) + tf.cast(dep, a.dtype) for a in args]
                    tape.watch(again_args + variables)
                    again = run(again_args)
                grads = tape.gradient(again, again_args + variables, output_gradients=list(dresult),
                                      unconnected_gradients=tf.UnconnectedGradients.ZERO)
                return grads[:len(args)], grads[len(args):]
            return run(args), grad
        outs = block(*[fast_weights[k] for k in keys], inputa, labela)
        return dict(zip(keys, outs[:n])), outs[n], outs[n + 1]

    def _adapt_step(self, fast_weights, inputa, labela, step):
        """`_adapt` as computed (and, under --remat, recomputed)."""
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(list(fast_weights.values()))
            output = self.step_forward(inputa, fast_weights, step)
            loss = self.loss_func(output, labela)
            # tf.gradients of the original's per-row vector = grad of its sum; summing over tasks
            # too gives each task's own gradient, as each task has its own copy of the weights
            total = tf.reduce_sum(loss)
            if self.loss_scale:   # --precision=float16: keep the half-precision backward pass above underflow
                total = total * self.loss_scale
        grads = tape.gradient(total, fast_weights)
        if self.loss_scale:
            grads = {k: g / self.loss_scale for k, g in grads.items()}
        if self.config.stop_grad:
            grads = {k: tf.stop_gradient(g) for k, g in grads.items()}
        return {k: w - self.inner_lr(k, step) * grads[k] for k, w in fast_weights.items()}, output, loss

    def inner_lr(self, key, step):
        """The inner step size of weight `key` at inner step `step`: update_lr (a hook: Meta-SGD, MAML++ LSLR)."""
        return self.update_lr

    def step_forward(self, inp, weights, step):
        """The network at inner step `step`: `forward` (a hook: MAML++'s per-step batch norm)."""
        return self.forward(inp, weights)

    def task_metalearn(self, inputa, inputb, labela, labelb, weights, num_updates):
        """Adapts per-task `weights` ([B, ...]) to B stacked tasks with `num_updates` steps on (inputa, labela).

        Returns a TaskOutput: outputa [B, rows, out] / lossa / accuracya [B] of the initial weights
        on a, and outputbs / lossesb / accuraciesb (lists of length num_updates) on b after j+1 steps.
        """
        fast_weights, outputa, lossa = self._adapt(weights, inputa, labela, 0)
        outputbs, lossesb = [], []
        for j in range(num_updates):
            if j > 0:
                fast_weights, _, _ = self._adapt(fast_weights, inputa, labela, j)
            outputbs.append(self.step_forward(inputb, fast_weights, j))
            lossesb.append(self.loss_func(outputbs[-1], labelb))
        accuracya = accuraciesb = None
        if self.classification:
            accuracya = accuracy(outputa, labela)
            accuraciesb = [accuracy(o, labelb) for o in outputbs]
        return TaskOutput(outputa, outputbs, lossa, lossesb, accuracya, accuraciesb)

    def _task_weights(self, batch):
        """The meta-parameters as `batch` per-task copies [batch, ...] (gradients sum back through)."""
        return {k: tf.broadcast_to(v, [batch] + v.shape.as_list()) for k, v in self.weights.items()}

    def metalearn(self, inputa, labela, inputb, labelb, num_updates, task_groups=None):
        """Runs `task_metalearn` on every task of the meta-batch ([B, rows, dim] inputs), in `task_groups` groups
        (default: self.task_groups).

        Returns a MetaOutput whose totals are sums over tasks (and rows) divided by B, exactly
        the original's total_loss1 / total_losses2 / accuracies.
        """
        return self._metalearn(inputa, labela, inputb, labelb, num_updates, task_groups)[0]

    def _metalearn(self, inputa, labela, inputb, labelb, num_updates, task_groups=None):
        """(MetaOutput, [total_losses2[j] for each step j] as separate scalars).

        The meta-objective is differentiated from its own scalar, not from an entry of the stacked
        total_losses2: the gradient of a stack sends zeros into every other step's query pass, and
        backpropagating those zeros cost as much as the real meta-gradient.
        """
        batch = int(inputa.shape[0])
        if self.batched:
            out = self._grouped_metalearn(inputa, inputb, labela, labelb, num_updates, task_groups)
        else:
            out = self._map_tasks(inputa, inputb, labela, labelb, num_updates)
        totals2 = [tf.reduce_sum(loss) / batch for loss in out.lossesb]
        total_acc1 = total_accs2 = None
        if self.classification:
            total_acc1 = tf.reduce_sum(out.accuracya) / batch
            total_accs2 = tf.reduce_sum(tf.stack(out.accuraciesb), 1) / batch
        return MetaOutput(tf.reduce_sum(out.lossa) / batch, tf.stack(totals2), total_acc1, total_accs2,
                          out.lossa, tf.stack(out.lossesb), out.outputa, tf.stack(out.outputbs)), totals2

    def _grouped_metalearn(self, inputa, inputb, labela, labelb, num_updates, task_groups=None):
        """`task_metalearn` on the meta-batch split into `task_groups` independent groups of tasks, its
        TaskOutput concatenated back in task order.

        Tasks never interact, so the split changes no value; it gives XLA's CPU runtime independent
        chains of ops to run on separate cores, where one batched chain keeps one core mostly idle.
        """
        batch = int(inputa.shape[0])
        groups = max(1, min(task_groups or self.task_groups, batch))
        if groups == 1:
            return self.task_metalearn(inputa, inputb, labela, labelb, self._task_weights(batch), num_updates)
        sizes = [batch // groups + (i < batch % groups) for i in range(groups)]
        parts = zip(*(tf.split(t, sizes) for t in (inputa, inputb, labela, labelb)))
        outs = [self.task_metalearn(*part, self._task_weights(size), num_updates)
                for part, size in zip(parts, sizes)]

        def concat(*values):
            if values[0] is None:
                return None
            if isinstance(values[0], list):
                return [tf.concat(v, 0) for v in zip(*values)]
            return tf.concat(values, 0)
        return TaskOutput(*(concat(*field) for field in zip(*outs)))

    def _map_tasks(self, inputa, inputb, labela, labelb, num_updates):
        """The reference path: one task at a time under tf.map_fn, as the original; TaskOutput stacked over tasks."""
        def one_task(task):
            out = self.task_metalearn(*(t[None] for t in task), weights=self._task_weights(1),
                                      num_updates=num_updates)
            if not self.classification:
                out = out._replace(accuracya=tf.zeros([1]), accuraciesb=[tf.zeros([1])] * num_updates)
            return tf.nest.map_structure(lambda t: t[0], out)

        tasks = (inputa, inputb, labela, labelb)
        return tf.map_fn(one_task, tasks, fn_output_signature=_signature(self, tasks, num_updates),
                         parallel_iterations=int(inputa.shape[0]))

    # ---------------------------------------------------------------- steps
    def meta_gradients(self, inputa, labela, inputb, labelb, num_updates=None):
        """(MetaOutput, {name: raw d total_losses2[num_updates-1] / d variable}) for one meta-batch."""
        num_updates = num_updates or self.config.num_updates
        with tf.GradientTape() as tape:
            out, totals2 = self._metalearn(inputa, labela, inputb, labelb, num_updates)
            loss = self.meta_objective(totals2)
            if self.loss_scale:   # --precision=float16 (see _adapt_step)
                loss = loss * self.loss_scale
        grads = tape.gradient(loss, self.meta_variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        if self.loss_scale:
            grads = {k: g / self.loss_scale for k, g in grads.items()}
        return out, grads

    def meta_objective(self, totals2):
        """The loss the meta-update descends, from the per-step query losses: the last (a hook: MAML++'s MSL)."""
        return totals2[self.config.num_updates - 1]

    def _metatrain_step(self, inputa, labela, inputb, labelb):
        out, grads = self.meta_gradients(inputa, labela, inputb, labelb)
        if self.config.datasource == 'miniimagenet':
            grads = {k: tf.clip_by_value(g, -GRAD_CLIP_MINIIMAGENET, GRAD_CLIP_MINIIMAGENET)
                     for k, g in grads.items()}
        self.metatrain_optimizer.apply_gradients(grads)
        # Only the meta-objective leaves the step, so the compiled step drops the query passes of
        # the earlier inner steps and the accuracies, which nothing needs (the original's graph
        # skipped them too unless summaries were fetched).
        return out.total_losses2[self.config.num_updates - 1]

    def _pretrain_step(self, inputa, labela, inputb, labelb):
        with tf.GradientTape() as tape:
            batch = int(inputa.shape[0])
            losses = self.loss_func(self.forward(inputa, self._task_weights(batch)), labela)
            total_loss1 = tf.reduce_sum(losses) / batch
        grads = tape.gradient(total_loss1, self.meta_variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        self.pretrain_optimizer.apply_gradients(grads)
        return total_loss1

    def _compiled(self, name, fn, jit):
        if name not in self._functions:
            self._functions[name] = tf.function(fn, jit_compile=jit)
        return self._functions[name]

    def metatrain_step(self, inputa, labela, inputb, labelb):
        """One meta-update (Adam on the post-update loss after `num_updates` steps); returns that loss,
        total_losses2[num_updates - 1] of the weights before the update (`evaluate` gives the whole
        MetaOutput). Compiled once, with XLA if `config.xla`."""
        return self._compiled('metatrain', self._metatrain_step, self.config.xla)(inputa, labela, inputb, labelb)

    def metatrain_steps(self, inputa, labela, inputb, labelb, count):
        """`count` meta-updates on the first `count` of the stacked meta-batches [N, B, ...] in one compiled call
        (loop.py); returns the objectives [N] that `metatrain_step` would have returned (0 from `count` on)."""
        fn = self._compiled('metatrain_steps', loop.repeated(self._metatrain_step), self.config.xla)
        return fn(inputa, labela, inputb, labelb, tf.constant(0), tf.constant(count))

    def pretrain_step(self, inputa, labela, inputb, labelb):
        """One step of the pretrained baseline (Adam on the pre-update loss); returns that loss."""
        return self._compiled('pretrain', self._pretrain_step, self.config.xla)(inputa, labela, inputb, labelb)

    def evaluate(self, inputa, labela, inputb, labelb, num_updates=None):
        """MetaOutput after max(test_num_updates, num_updates) inner steps; changes nothing.

        One task group: without a meta-gradient the groups buy no speed, and they cost compile time (Omniglot's
        10-step evaluation of 25 tasks on a 2-core AVX2 EPYC: first call 61 s against 164 s for two groups, then
        0.66 s against 1.00 s per call; docs/SPEED.md). The values are the same but for the order of the sum
        of the tasks' accuracies (a difference of 3e-8)."""
        steps = num_updates or max(self.test_num_updates, self.config.num_updates)
        fn = self._compiled(f'evaluate{steps}', lambda a, la, b, lb: self.metalearn(a, la, b, lb, steps, 1),
                            self.config.xla)
        return fn(inputa, labela, inputb, labelb)


def default_task_groups():
    """Task groups for the batched path: 1 on a GPU (one batched computation is fastest there), 2 on
    a CPU (measured fastest on 2 cores: scripts/benchmark.py, docs/SPEED.md)."""
    return 1 if tf.config.list_logical_devices('GPU') else 2


def _signature(model, tasks, num_updates):
    """map_fn output signature of one task's TaskOutput."""
    inputa, inputb = tasks[0], tasks[1]
    rows_a, rows_b = int(inputa.shape[1]), int(inputb.shape[1])
    out = model.dim_output
    dt = model.dtype
    loss_a = tf.TensorSpec([rows_a] if model.classification else [], dt)
    loss_b = tf.TensorSpec([rows_b] if model.classification else [], dt)
    acc = tf.TensorSpec([], tf.float32)
    return TaskOutput(tf.TensorSpec([rows_a, out], dt), [tf.TensorSpec([rows_b, out], dt)] * num_updates,
                      loss_a, [loss_b] * num_updates, acc, [acc] * num_updates)
