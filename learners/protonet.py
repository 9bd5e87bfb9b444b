"""Prototypical Networks (Snell et al. 2017) and the Conv-4 embedding the metric learners share.

The embedding is MAML's conv net with max-pool minus its output layer: 4 x [3x3 conv, 'SAME', bias -> batch norm
-> ReLU -> 2x2 max-pool], flattened (64-d on 28x28 Omniglot, 1600-d on 84x84 MiniImagenet with 64 filters), built
from utils' per-task conv and max-pool. Batch norm is the references' PyTorch BatchNorm2d: scale gamma and offset
beta, eps 1e-5, in training mode the statistics of the batch (support and query of an episode embedded together,
as jakesnell/prototypical-networks and CloserLookFewShot concatenate them), and running averages (momentum 0.1,
unbiased variance) that the references' model.eval() uses at test time (`--test_bn=running`, the default;
`--test_bn=episode` normalises each test episode with its own statistics, as MAML's test does).

ProtoNets: prototype c_k = mean support embedding of class k, logits = -||f(x) - c_k||^2, loss = mean
cross-entropy of the queries; Adam lr --meta_lr halved every --lr_decay_every meta-iterations (the reference's
StepLR(20 epochs x 100 episodes, gamma 0.5) with one episode per update, i.e. --meta_batch_size=1).
Differences from the reference: TF1 Adam (`adam.Adam`: eps added to sqrt(v) before the bias correction of the step,
PyTorch adds eps * sqrt(1 - beta2^t) there; the same update up to that), with B > 1 episodes per step the loss is
their mean.
"""
import numpy as np
import tensorflow as tf

from infra import adam
from infra import loop
import config as config_lib
from config import TEST_BN, Config
from maml import MetaOutput
from utils import accuracy, conv2d_per_task, max_pool_2x2, moments_tf10, normalize

BN_EPSILON = 1e-5        # torch.nn.BatchNorm2d default
BN_MOMENTUM = 0.1        # torch running-average momentum
METRIC_TRAIN_QUERY = {'omniglot': 5, 'miniimagenet': 15}   # query examples per class in training


# ---------------------------------------------------------------- pure functions
def prototypes(support, labels):
    """Class prototypes c_k = mean of the support embeddings labelled k: [B, S, D], one-hot [B, S, N] -> [B, N, D]."""
    return tf.matmul(labels, support, transpose_a=True) / tf.reduce_sum(labels, 1)[:, :, None]


def squared_distances(query, centers):
    """||q_i - c_k||^2 for every query and center: [B, Q, D], [B, N, D] -> [B, Q, N] (the reference's
    euclidean_dist, written as a difference so it stays exact and non-negative)."""
    return tf.reduce_sum(tf.square(query[:, :, None, :] - centers[:, None, :, :]), -1)


def protonet_logits(support, labela, query):
    """ProtoNets' logits -||f(x) - c_k||^2 of the queries: [B, S, D], [B, S, N], [B, Q, D] -> [B, Q, N]."""
    return -squared_distances(query, prototypes(support, labela))


def mean_xent(logits, labels):
    """Per task, the mean softmax cross-entropy over rows (PyTorch's CrossEntropyLoss / NLLLoss): [B, R, N] -> [B]."""
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits), -1)


# ---------------------------------------------------------------- the Conv-4 embedding
def init_conv4(rng, channels, filters, norm, scheme='torch'):
    """Initial embedding weights {conv1..4 [3,3,C,F], b1..4 [F], '<i>/gamma', '<i>/beta' [F]}.

    scheme 'torch': PyTorch's defaults of 2017 (the ProtoNets code): kernels and biases U(+-1/sqrt(9 C)), batch-norm
    gamma U(0, 1) (torch < 1.2 drew it so), beta 0. 'closer_look': CloserLookFewShot's init_layer: kernels
    N(0, sqrt(2 / (9 F))), biases U(+-1/sqrt(9 C)), gamma 1, beta 0. layer_norm: gamma 1, beta 0; 'None': no norm
    weights.
    """
    weights = {}
    for i, c_in in enumerate([channels, filters, filters, filters]):
        bound = 1.0 / np.sqrt(9 * c_in)
        if scheme == 'torch':
            weights[f'conv{i + 1}'] = rng.uniform([3, 3, c_in, filters], -bound, bound, tf.float32)
        else:
            weights[f'conv{i + 1}'] = rng.normal([3, 3, c_in, filters], 0.0, np.sqrt(2.0 / (9 * filters)), tf.float32)
        weights[f'b{i + 1}'] = rng.uniform([filters], -bound, bound, tf.float32)
        if norm == 'batch_norm' and scheme == 'torch':
            weights[f'{i}/gamma'] = rng.uniform([filters], 0.0, 1.0, tf.float32)
        elif norm in ('batch_norm', 'layer_norm'):
            weights[f'{i}/gamma'] = tf.ones([filters])
        if norm in ('batch_norm', 'layer_norm'):
            weights[f'{i}/beta'] = tf.zeros([filters])
    return weights


def batch_moments(h):
    """(mean, biased variance [B, 1, 1, 1, F], count): each task's moments over its rows and pixels of the maps
    h [B, rows, H, W, F] (utils.moments_tf10), and how many values each is over (rows * H * W)."""
    mean, var = moments_tf10(h, [1, 2, 3])
    return mean, var, h.shape[1] * h.shape[2] * h.shape[3]


def embed(images, weights, norm, img_size, channels, running=None, moments=batch_moments, final_relu=True):
    """The Conv-4 embedding of flattened images [B, rows, H*W*C] (row-major H, W, C) with per-task weights [B, ...].

    Returns (features [B, rows, D], statistics): batch norm normalises each task's rows with their own batch
    statistics, returned as [(mean [B, F], biased variance [B, F], count)] per layer, or, given `running`
    [(mean [F], variance [F])] per layer, with those (statistics then []). layer_norm / 'None' as MAML's.
    `final_relu=False` leaves out the last block's ReLU (features of either sign; Matching Networks' --final_relu).
    `moments`: how the batch statistics are taken (`batch_moments`; --distribute's replicas pass
    infra.distribute.synced_moments, the statistics of every replica's rows together).
    """
    b, rows = images.shape[0], images.shape[1]
    h = tf.reshape(images, [b, rows, img_size, img_size, channels])
    stats = []
    for i in range(4):
        activation = tf.nn.relu if final_relu or i < 3 else tf.identity
        h = conv2d_per_task(h, weights[f'conv{i + 1}'], 1) + weights[f'b{i + 1}'][:, None, None, None, :]
        if norm == 'batch_norm':
            if running is None:
                mean, var, count = moments(h)
                stats.append((mean[:, 0, 0, 0], var[:, 0, 0, 0], count))
            else:
                mean, var = running[i]
            scale = weights[f'{i}/gamma'][:, None, None, None, :] * tf.math.rsqrt(var + BN_EPSILON)
            h = activation((h - mean) * scale + weights[f'{i}/beta'][:, None, None, None, :])
        else:
            h = normalize(h, norm, {p: weights[f'{i}/{p}'] for p in ('beta', 'gamma') if f'{i}/{p}' in weights},
                          activation, feature_rank=3)
        h = max_pool_2x2(h)
    return tf.reshape(h, [b, rows, int(np.prod(h.shape[2:]))]), stats


def feature_size(img_size, filters):
    """D, the embedding's width: filters x (img_size halved (floor) four times)^2."""
    for _ in range(4):
        img_size //= 2
    return filters * img_size * img_size


class Conv4Learner(tf.Module):
    """The Conv-4 embedding as variables, its batch-norm running statistics, and the episode forward pass.

    Subclasses define `metric(support, labela, query) -> logits [B, Q, N]`. Variables: `weights` (trained),
    `running` ('<i>/moving_mean', '<i>/moving_variance'), both in `checkpoint_items()`.
    """
    init_scheme = 'torch'
    trains_on_tasks, summarizes_every_task, adapts = True, False, True   # see maml.MAML
    batch_split = 'queries'
    summary_updates = staticmethod(lambda config: None)
    meta_train_shots = staticmethod(lambda config: config.update_batch_size)
    train_samples_per_class = staticmethod(lambda config: None)
    final_relu = True      # the last block's ReLU (MatchingNet: --final_relu)

    def __init__(self, dim_input, dim_output, test_num_updates=0, config=Config(), dtype=tf.float32):
        super().__init__(name='model')
        if config.test_bn not in TEST_BN:
            raise ValueError(f'unknown --test_bn={config.test_bn!r}; use running or episode')
        self.config, self.dtype = config, dtype
        self.dim_input, self.dim_output = dim_input, dim_output
        self.classification = True
        self.channels = config_lib.image_channels(config)
        self.img_size = int(round(np.sqrt(dim_input / self.channels)))
        self.dim_hidden = config.num_filters
        rng = tf.random.Generator.from_seed(config.seed) if config.seed >= 0 \
            else tf.random.Generator.from_non_deterministic_state()
        self.rng = rng
        self.construct_embedding(rng)
        self._functions = {}

    def construct_embedding(self, rng):
        """Creates the embedding's variables: `weights` (trained) and `running` (batch-norm running statistics).
        A hook: networks/ plugs a Keras model in here (and overrides `embed`)."""
        config, dtype = self.config, self.dtype
        with tf.name_scope('model'):
            self.weights = {k: tf.Variable(tf.cast(v, dtype), name=k) for k, v in
                            init_conv4(rng, self.channels, self.dim_hidden, config.norm, self.init_scheme).items()}
            self.weights.update({k: tf.Variable(tf.cast(v, dtype), name=k) for k, v in self.metric_weights().items()})
            self.running = {}
            if config.norm == 'batch_norm':
                for i in range(4):
                    self.running[f'{i}/moving_mean'] = tf.Variable(tf.zeros([self.dim_hidden], dtype), trainable=False,
                                                                   name=f'{i}/moving_mean')
                    self.running[f'{i}/moving_variance'] = tf.Variable(tf.ones([self.dim_hidden], dtype),
                                                                       trainable=False, name=f'{i}/moving_variance')

    def embedding_size(self):
        """D, the width of `embed`'s features."""
        return feature_size(self.img_size, self.dim_hidden)

    def metric_weights(self):
        """{name: initial value} of the metric's own trained weights beside the embedding's (none here)."""
        return {}

    def _compiled(self, name, fn):
        if name not in self._functions:
            self._functions[name] = tf.function(fn, jit_compile=self.config.xla)
        return self._functions[name]

    def _task_weights(self, weights, batch):
        return {k: tf.broadcast_to(v, [batch] + v.shape.as_list()) for k, v in weights.items()}

    def _running_stats(self):
        return [(self.running[f'{i}/moving_mean'], self.running[f'{i}/moving_variance']) for i in range(4)]

    def embed(self, images, training, moments=batch_moments):
        """(features [B, rows, D], batch statistics) of images [B, rows, dim]: batch statistics (taken by
        `moments`, see `embed`) when `training` or --test_bn=episode, else the running averages."""
        running = None if training or self.config.test_bn == 'episode' or not self.running \
            else self._running_stats()
        return embed(images, self._task_weights(self.weights, int(images.shape[0])), self.config.norm,
                     self.img_size, self.channels, running, moments, self.final_relu)

    def update_running(self, stats):
        """Moves the running averages towards the batch statistics (torch: x <- 0.9 x + 0.1 batch, the variance
        unbiased by n / (n - 1)); with B tasks, towards their mean."""
        for i, (mean, var, n) in enumerate(stats):
            m, v = self.running[f'{i}/moving_mean'], self.running[f'{i}/moving_variance']
            m.assign((1 - BN_MOMENTUM) * m + BN_MOMENTUM * tf.reduce_mean(mean, 0))
            v.assign((1 - BN_MOMENTUM) * v + BN_MOMENTUM * tf.reduce_mean(var, 0) * (n / max(n - 1, 1)))

    def episode_logits(self, inputa, labela, inputb, training):
        """(query logits [B, NQ, N], batch statistics): support and query embedded as one batch, then `metric`."""
        rows_a = int(inputa.shape[1])
        features, stats = self.embed(tf.concat([inputa, inputb], 1), training)
        return self.metric(features[:, :rows_a], labela, features[:, rows_a:]), stats


class MetricLearner(Conv4Learner):
    """An episodic metric learner: Adam on the mean query cross-entropy, learning rate halved every
    --lr_decay_every meta-iterations; evaluation has no inner steps (T = 0)."""
    adapts = False

    @staticmethod
    def train_samples_per_class(config):
        """K + 5 (Omniglot) or K + 15 (MiniImagenet) query examples, as the references train, or K + --num_query."""
        query = config.num_query if config.num_query > 0 else METRIC_TRAIN_QUERY.get(config.datasource, 5)
        return config.update_batch_size + query

    def __init__(self, dim_input, dim_output, test_num_updates=0, config=Config(), dtype=tf.float32):
        super().__init__(dim_input, dim_output, test_num_updates, config, dtype)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
        self.learning_rate = tf.Variable(config.meta_lr, dtype=dtype, trainable=False, name='learning_rate')
        self.metatrain_optimizer = adam.Adam(self.weights, self.learning_rate, name='Adam')

    def checkpoint_items(self):
        """{name: trackable} a checkpoint holds: weights, running statistics, Adam (slots, beta powers, its
        learning-rate variable) and the step counter of the learning-rate schedule."""
        return dict(weights=self.weights, running=self.running, metatrain_optimizer=self.metatrain_optimizer,
                    step=self.step)

    def scheduled_lr(self, step):
        """--meta_lr * 0.5 ** (step // --lr_decay_every) (constant when lr_decay_every is 0)."""
        every = self.config.lr_decay_every
        if every <= 0:
            return tf.constant(self.config.meta_lr, self.dtype)
        return self.config.meta_lr * tf.pow(tf.constant(0.5, self.dtype), tf.cast(step // every, self.dtype))

    def gradients(self, inputa, labela, inputb, labelb):
        """(loss, {name: gradient}, batch statistics): the mean query cross-entropy of B episodes (support a,
        query b), its gradient for `weights`, and the batch statistics of each layer (see `embed`).
        --distribute replaces it on the instance (infra.distribute.distribute_learner: the query rows split
        over the replicas)."""
        with tf.GradientTape() as tape:
            logits, stats = self.episode_logits(inputa, labela, inputb, training=True)
            loss = tf.reduce_mean(mean_xent(logits, labelb))
        return loss, tape.gradient(loss, self.weights), stats

    def query_share_loss(self, inputa, labela, inputb, labelb, rows, moments):
        """One replica's share of the training loss under --distribute: the support a [B, S, dim] and the query
        rows `rows` (a slice) of b embedded together with `moments` (the statistics of the whole episode), the
        metric against the whole support. Returns (the share's cross-entropy summed over its rows and divided
        by B * Q, so that the replicas' shares add up to the mean of `gradients`; batch statistics)."""
        rows_a, queries = int(inputa.shape[1]), int(inputb.shape[1])
        features, stats = self.embed(tf.concat([inputa, inputb[:, rows]], 1), True, moments)
        logits = self.metric(features[:, :rows_a], labela, features[:, rows_a:])
        xent = tf.nn.softmax_cross_entropy_with_logits(labels=labelb[:, rows], logits=logits)
        return tf.reduce_sum(xent) / float(int(inputb.shape[0]) * queries), stats

    def _metatrain_step(self, inputa, labela, inputb, labelb):
        self.learning_rate.assign(self.scheduled_lr(self.step))
        loss, grads, stats = self.gradients(inputa, labela, inputb, labelb)
        self.metatrain_optimizer.apply_gradients(grads)
        if self.running:
            self.update_running(stats)
        self.step.assign_add(1)
        return loss

    def metatrain_step(self, inputa, labela, inputb, labelb):
        """One Adam update on B episodes (support a, query b); returns their mean query loss before it."""
        return self._compiled('metatrain', self._metatrain_step)(inputa, labela, inputb, labelb)

    def metatrain_steps(self, inputa, labela, inputb, labelb, count):
        """`count` updates on the first `count` of the stacked episodes [N, B, ...] in one compiled call (loop.py);
        returns their objectives [N] (0 from `count` on)."""
        fn = self._compiled('metatrain_steps', loop.repeated(self._metatrain_step))
        return fn(inputa, labela, inputb, labelb, tf.constant(0), tf.constant(count))

    def _evaluate(self, inputa, labela, inputb, labelb):
        logits, _ = self.episode_logits(inputa, labela, inputb, training=False)
        losses, accs = mean_xent(logits, labelb), accuracy(logits, labelb)
        empty = tf.zeros([0], self.dtype)
        return MetaOutput(tf.reduce_mean(losses), empty, tf.reduce_mean(accs), tf.zeros([0], tf.float32),
                          losses, None, None, logits[None])

    def evaluate(self, inputa, labela, inputb, labelb):
        """MetaOutput with T = 0: total_loss1 / total_accuracy1 = mean query loss / accuracy, lossesa [B] the
        per-task query losses, outputbs [1, B, NQ, N] the query logits. Changes nothing."""
        return self._compiled('evaluate', self._evaluate)(inputa, labela, inputb, labelb)


class ProtoNet(MetricLearner):
    """Prototypical Networks: logits = -squared Euclidean distance to the class prototypes."""

    def metric(self, support, labela, query):
        return protonet_logits(support, labela, query)
