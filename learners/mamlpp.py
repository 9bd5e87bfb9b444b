"""MAML++ (Antoniou, Edwards, Storkey, ICLR 2019, "How to train your MAML"): each change its own switch.

`MAMLPlusPlus` is `maml.MAML` plus the switches (all off by default; config.py's MAML++ block), and the base
of `metasgd.MetaSGD` and `anil.ANIL`, so every switch works with the three inner-loop learners:

- `--multi_step_loss` (MSL): the meta-objective is sum_j w_j * (query loss after step j+1) with
  `msl_weights`, while epoch < `--multi_step_loss_epochs`; afterwards the last step's loss alone.
- `--first_order_epochs=N` (DA): first-order meta-gradient (as `--stop_grad`) while epoch <= N, then second
  order: the released code's test `epoch > first_order_to_second_order_epoch`, so N+1 epochs are first order.
- `--lslr` (LSLR): one learned inner step size per adapted weight tensor and inner step, initialised to
  `--update_lr`, meta-learned by the outer Adam (Meta-SGD: its per-element alphas get a step axis instead).
- `--per_step_bn` (BNWB): one norm gamma and beta per inner step ([N, C] each; batch norm gets a gamma,
  ones, that MAML's batch norm does not have), meta-learned, not adapted. Inner step j and the query pass
  after it use row j; steps beyond `--num_updates` (evaluation runs 10 on Omniglot) reuse the last row, as
  do LSLR's rates.
- `--per_step_bn_stats` (BNRS, `--norm=batch_norm`): per batch-norm layer a running mean and variance per
  inner step ([N, C], not trainable), kept as the released `MetaBatchNormLayer` keeps them and, as there, never
  used to normalise: every pass, training and evaluation, normalises with the batch's own statistics (the
  released `forward` calls `F.batch_norm(..., training=True)` whatever `training` its callers pass), so the
  flag changes no output and no weight; it adds the statistics to the checkpoint. Row j takes the support pass
  of inner step j and the query pass after step j (`running_mean[num_step]`), the latter only where the
  released code runs it (every step while MSL is on, else the last), task after task, each as torch's
  `momentum=0.1` update: mean <- 0.9 mean + 0.1 batch mean, variance <- 0.9 variance + 0.1 n/(n-1) batch
  variance (n values per channel). They start at zeros / ones but row 0's variance, 0.81: the released network
  runs two all-zero batches through each layer when it is built (`build_block`, `build_network`), two
  updates toward variance 0. Evaluation leaves them unchanged, as the released code's backup (step 0) and
  restore (after each task) intend; its backup, `copy(running_mean.data)`, shares the live tensor's storage,
  so there evaluation passes do enter them (docs/METHODS.md). `_normalise_with_running_stats` (for
  scripts/diagnose_bn_stats.py only) normalises with them instead, which the released code never does.
- `--cosine_meta_lr` (CA): meta lr = min + (meta_lr - min) (1 + cos(pi epoch / epochs)) / 2 per epoch,
  epochs = ceil(metatrain_iterations / iterations_per_epoch), as torch's CosineAnnealingLR stepped per epoch.
- An epoch is `--iterations_per_epoch` meta-iterations; `iteration` (a checkpointed variable) counts them.
"""
import functools
import math

import tensorflow as tf

from infra import adam
from infra import loop
import maml
from config import Config

BN_MOMENTUM = 0.1    # the released MetaBatchNormLayer's, torch convention: new = (1 - m) old + m batch
BUILD_PASSES = 2     # all-zero batches the released network runs through each layer as it is built (row 0)


def enabled(config):
    """True when any MAML++ switch is on (the others only tune a switch)."""
    return bool(config.multi_step_loss or config.first_order_epochs >= 0 or config.lslr or config.per_step_bn
                or config.per_step_bn_stats or config.cosine_meta_lr)


def initial_running_mean(num_steps, width, dtype):
    """The released per-step running means once its network is built: zeros [num_steps, width] (its build
    passes see all-zero activations: zero input, zero conv biases)."""
    return tf.zeros([num_steps, width], dtype)


def initial_running_variance(num_steps, width, dtype):
    """The released per-step running variances once its network is built [num_steps, width]: ones, but row 0
    is (1 - m)^2 = 0.81: `MetaConvNormLayerReLU.build_block` and `VGGReLUNormNetwork.build_network` each run
    an all-zero batch (batch variance 0) through every layer at num_step 0, and F.batch_norm updates it."""
    first = tf.fill([1, width], tf.constant((1 - BN_MOMENTUM) ** BUILD_PASSES, dtype))
    return tf.concat([first, tf.ones([num_steps - 1, width], dtype)], 0)


def learner_class(config):
    """The class `--method=maml` builds: maml.MAML, or MAMLPlusPlus when a MAML++ switch is on (so plain MAML
    keeps its compiled step)."""
    return MAMLPlusPlus if enabled(config) else maml.MAML


def msl_weights(epoch, num_steps, num_epochs):
    """The MSL step weights [num_steps] (float64) at `epoch` (a number or float64 tensor), as the released
    `get_per_step_loss_importance_vector`: all 1/N at epoch 0; every step but the last loses epoch/(N E) down to
    0.03/N, the last gains what they lose, up to 1 - (N-1) 0.03/N."""
    n = num_steps
    epoch = tf.cast(epoch, tf.float64)
    decay = 1.0 / n / num_epochs
    start = 1.0 / n
    others = tf.maximum(start - epoch * decay, 0.03 / n)
    last = tf.minimum(start + epoch * (n - 1) * decay, 1.0 - (n - 1) * (0.03 / n))
    return tf.concat([tf.fill([n - 1], others), [last]], 0)


def cosine_lr(epoch, num_epochs, base, minimum):
    """torch CosineAnnealingLR's closed form at `epoch` (float64): min + (base - min)(1 + cos(pi e / T)) / 2."""
    epoch = tf.cast(epoch, tf.float64)
    return minimum + (base - minimum) * (1 + tf.cos(math.pi * epoch / num_epochs)) / 2


class MAMLPlusPlus(maml.MAML):
    """MAML with the MAML++ switches of `config`; with all of them off its numbers are MAML's.

    Extra state: `inner_lrs` {weight key: variable} (LSLR rates [N]; Meta-SGD's alphas), meta-learned with the
    weights (in `meta_variables` as 'lslr/<key>' / 'alpha/<key>'), `iteration`, the meta-iterations done, and
    `bn_stats` {'<scope>/running_mean' | '<scope>/running_variance': [N, C] variable} (--per_step_bn_stats).
    """
    inner_lr_prefix = 'lslr'
    per_step_bn_gamma = True     # --per_step_bn adds a gamma to MAML's batch norm (a Keras network keeps its own)

    def __init__(self, dim_input=1, dim_output=1, test_num_updates=5, config=Config(), dtype=tf.float32,
                 batched=True, task_groups=None):
        super().__init__(dim_input, dim_output, test_num_updates, config, dtype, batched, task_groups)
        if config.per_step_bn_stats and config.norm != 'batch_norm':
            raise ValueError('--per_step_bn_stats needs --norm=batch_norm')
        if config.per_step_bn_stats and not batched:
            raise ValueError('--per_step_bn_stats needs the batched path (batched=True)')
        if config.per_step_bn and not self.norm_weights:
            raise ValueError('--per_step_bn needs --norm=batch_norm or layer_norm')
        if config.iterations_per_epoch < 1:
            raise ValueError('--iterations_per_epoch must be >= 1')
        self.num_steps = config.num_updates        # N: the steps per-step parameters exist for
        if config.per_step_bn:
            norm = {}
            for k, v in self.norm_weights.items():
                norm[k] = v
                if config.norm == 'batch_norm' and self.per_step_bn_gamma:   # BNWB's gamma (MAML's BN has no scale)
                    norm[k[:-len('beta')] + 'gamma'] = tf.ones_like(v)
            self.norm_weights = {k: tf.Variable(tf.repeat(v[None], self.num_steps, 0), name=k)
                                 for k, v in norm.items()}
        self.bn_stats = {}
        if config.per_step_bn_stats:
            for k, v in self.norm_weights.items():
                if k.endswith('/beta'):
                    scope, width = k[:-len('/beta')], v.shape[-1]
                    for name, init in (('running_mean', initial_running_mean),
                                       ('running_variance', initial_running_variance)):
                        self.bn_stats[scope + '/' + name] = tf.Variable(
                            init(self.num_steps, width, dtype), trainable=False, name=scope + '/' + name)
        self._bn_step = 0                          # the row of the per-step norm weights `forward` uses
        self._stats_row = 0                        # the row of the running statistics `forward` uses
        self._normalise_with_running_stats = False  # scripts/diagnose_bn_stats.py only (the released code never)
        self._bn_log = None                        # while a meta-step is traced: [(row, query?, {scope: moments})]
        self._moments = None                       # the current pass's {scope: [(mean, variance, count)]}
        self._query = True                         # False inside an inner step (the support pass)
        self.inner_lrs = self.construct_inner_lrs()
        self.iteration = tf.Variable(0, dtype=tf.int64, trainable=False, name='meta_iteration')
        self.meta_variables = {**self.weights, **self.norm_weights,
                               **{self.inner_lr_prefix + '/' + k: v for k, v in self.inner_lrs.items()}}
        meta_lr = config.meta_lr
        if config.cosine_meta_lr:
            meta_lr = tf.Variable(tf.constant(config.meta_lr, dtype), trainable=False, name='meta_lr')
            self.num_epochs = max(1, -(-config.metatrain_iterations // config.iterations_per_epoch))
        self.metatrain_optimizer = adam.Adam(self.meta_variables, meta_lr, name='Adam')
        self.pretrain_optimizer = adam.Adam(self.meta_variables, config.meta_lr, name='Adam_pretrain')
        self._msl = False                          # set while the MSL variant of the step is traced

    def checkpoint_items(self):
        """MAML's items plus `inner_lrs` (if any) and `meta_iteration` (the schedules' clock); the Adam slots of
        the new meta-parameters are in `metatrain_optimizer`."""
        items = dict(super().checkpoint_items(), meta_iteration=self.iteration)
        if self.inner_lrs:
            items['inner_lrs'] = self.inner_lrs
        if self.bn_stats:
            items['bn_running_stats'] = self.bn_stats
        return items

    # ---------------------------------------------------------------- inner loop
    def adapted_keys(self):
        """The weight keys the inner loop adapts (all; ANIL: the head)."""
        return list(self.weights)

    def construct_inner_lrs(self):
        """{key: LSLR step sizes [N]} for the adapted weights, all `update_lr`; {} without --lslr."""
        if not self.config.lslr:
            return {}
        return {k: tf.Variable(tf.fill([self.num_steps], tf.constant(self.update_lr, self.dtype)),
                               name=self.inner_lr_prefix + '/' + k) for k in self.adapted_keys()}

    def inner_lr(self, key, step):
        """`inner_lrs[key]` (row `step` of it with --lslr), or update_lr for a key without one."""
        if key not in self.inner_lrs:
            return self.update_lr
        lr = self.inner_lrs[key]
        return lr[min(step, self.num_steps - 1)] if self.config.lslr else lr

    def _adapt(self, fast_weights, inputa, labela, step=0):
        self._query = False
        try:
            return super()._adapt(fast_weights, inputa, labela, step)
        finally:
            self._query = True

    def step_forward(self, inp, weights, step):
        """`forward` with row `step` of the per-step norm weights (--per_step_bn), logging the batch's moments
        for row `step` of the running statistics in a meta-step (--per_step_bn_stats: step's support pass and
        the query pass after it, as the released `num_step`); steps beyond N use row N-1."""
        row = min(step, self.num_steps - 1)
        self._bn_step = row if self.config.per_step_bn else 0
        self._stats_row = row
        if self._bn_log is not None:
            self._moments = {}
        try:
            out = self.forward(inp, weights)
            if self._bn_log is not None:
                self._bn_log.append((self._stats_row, self._query, self._moments))
            return out
        finally:
            self._bn_step = self._stats_row = 0
            self._moments = None

    def _norm(self, scope):
        norm = super()._norm(scope)
        if self.config.per_step_bn:
            norm = {p: v[self._bn_step] for p, v in norm.items()}
        if self._normalise_with_running_stats and self.bn_stats:
            norm['mean'] = self.bn_stats[scope + '/running_mean'][self._stats_row]
            norm['variance'] = self.bn_stats[scope + '/running_variance'][self._stats_row]
        elif self._moments is not None:
            norm['moments'] = self._moments.setdefault(scope, [])
        return norm

    # ---------------------------------------------------------------- running statistics
    def update_running_stats(self, log, msl):
        """Assigns `bn_stats` from a meta-step's `log` [(row, query?, {scope: [(mean, variance, count)]})] (in
        the order of the passes, task groups one after the other): row j takes, task after task, the support
        pass of inner step j and then the query pass after step j if the released code runs it (every step with
        MSL on, else the last), each update r <- (1 - m) r + m s with m = BN_MOMENTUM and s the batch mean or
        n/(n-1) times its biased variance (torch's running_var); the K sequential updates in closed form
        r (1 - m)^K + sum_k m (1 - m)^(K-1-k) s_k."""
        m = BN_MOMENTUM
        for row in range(self.num_steps):
            kinds = [q for q in dict.fromkeys(e[1] for e in log if e[0] == row)   # the passes' order
                     if not q or msl or row == self.num_steps - 1]
            for scope in dict.fromkeys(k.rsplit('/', 1)[0] for k in self.bn_stats):
                passes = [[e[2][scope][0] for e in log if e[0] == row and e[1] == query] for query in kinds]
                for i, (name, unbias) in enumerate((('running_mean', False), ('running_variance', True))):
                    per_pass = []
                    for moments in passes:
                        s = tf.concat([tf.reshape(mv[i], [-1, mv[i].shape[-1]]) for mv in moments], 0)   # [B, C]
                        per_pass.append(s * (moments[0][2] / (moments[0][2] - 1)) if unbias else s)
                    stats = tf.reshape(tf.stack(per_pass, 1), [-1, per_pass[0].shape[-1]])    # [K, C], task order
                    k = int(stats.shape[0])
                    w = tf.constant([m * (1 - m) ** (k - 1 - t) for t in range(k)], self.dtype)
                    var = self.bn_stats[scope + '/' + name]
                    new = (1 - m) ** k * var[row] + tf.tensordot(w, tf.stop_gradient(stats), 1)
                    var.assign(tf.tensor_scatter_nd_update(var, [[row]], new[None]))

    # ---------------------------------------------------------------- schedules
    def epoch(self):
        """The current epoch as an int64 tensor: meta-iterations done // iterations_per_epoch."""
        return self.iteration // self.config.iterations_per_epoch

    def schedule(self, iteration):
        """(MSL on, first order) for meta-iteration `iteration`, by the released code's epoch tests."""
        c, epoch = self.config, iteration // self.config.iterations_per_epoch
        return (bool(c.multi_step_loss and epoch < c.multi_step_loss_epochs),
                bool(c.first_order_epochs >= 0 and not epoch > c.first_order_epochs))

    def meta_objective(self, totals2):
        """With MSL on: sum_j msl_weights[j] * totals2[j]; else the last step's loss (MAML)."""
        if not self._msl:
            return super().meta_objective(totals2)
        w = tf.cast(msl_weights(self.epoch(), self.num_steps, self.config.multi_step_loss_epochs), self.dtype)
        return tf.add_n([w[j] * totals2[j] for j in range(self.num_steps)])

    def _scheduled_step(self, msl, first_order, inputa, labela, inputb, labelb):
        """MAML's step traced with MSL on/off and first / second order; sets the cosine meta lr from `iteration`
        first and advances `iteration` after."""
        config = self.config
        self._msl = msl
        if first_order:
            self.config = config.replace(stop_grad=True)
        try:
            if config.cosine_meta_lr:
                lr = cosine_lr(self.epoch(), self.num_epochs, config.meta_lr, config.min_meta_lr)
                self.metatrain_optimizer.learning_rate.assign(tf.cast(lr, self.dtype))
            self._bn_log = [] if self.bn_stats else None
            loss = self._metatrain_step(inputa, labela, inputb, labelb)
            if self.bn_stats:
                self.update_running_stats(self._bn_log, msl)
        finally:
            self.config, self._msl, self._bn_log = config, False, None
        self.iteration.assign_add(1)
        return loss

    def metatrain_step(self, inputa, labela, inputb, labelb):
        """One meta-update, compiled once per (MSL, order) variant the schedules reach; returns the last inner
        step's query loss before the update (MSL's weighted sum is what it descends)."""
        msl, first_order = self.schedule(int(self.iteration.numpy()))
        fn = self._compiled(f'metatrain_msl{int(msl)}_fo{int(first_order)}',
                            functools.partial(self._scheduled_step, msl, first_order), self.config.xla)
        return fn(inputa, labela, inputb, labelb)

    def metatrain_steps(self, inputa, labela, inputb, labelb, count):
        """MAML's `metatrain_steps`: one compiled loop per run of iterations with the same schedule (a chunk that
        crosses an epoch where MSL or the derivative order switches is two calls); objectives [N]."""
        start, objectives, begin = int(self.iteration.numpy()), 0, 0
        while begin < count:
            msl, first_order = self.schedule(start + begin)
            end = begin + 1
            while end < count and self.schedule(start + end) == (msl, first_order):
                end += 1
            fn = self._compiled(f'metatrain_steps_msl{int(msl)}_fo{int(first_order)}', loop.repeated(
                functools.partial(self._scheduled_step, msl, first_order)), self.config.xla)
            objectives += fn(inputa, labela, inputb, labelb, tf.constant(begin), tf.constant(end))
            begin = end
        return objectives
