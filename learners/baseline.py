"""The fine-tuning baselines of Chen et al. 2019 ("A Closer Look at Few-shot Classification"), as
wyharveychen/CloserLookFewShot runs them with the Conv-4 backbone.

Pre-training (`pretrain_step_on_batch`): the Conv-4 embedding (protonet.Conv4Learner, CloserLookFewShot's
init_layer initialisation) and a classifier over all meta-training classes, mean softmax cross-entropy on ordinary
mini-batches, Adam at --meta_lr (the reference's torch Adam defaults, lr 1e-3; TF1 Adam here, see protonet.py).
Baseline: a linear classifier (torch nn.Linear init, bias 0). Baseline++ (`cosine`): distLinear, scale *
cos(x, w_k) with w_k = g_k v_k / |v_k| (weight norm, g initialised to |v|, no bias), features divided by
|x| + 1e-5, scale 2, or 10 with more than 200 classes.

Test (`evaluate`): the body is frozen, the support and query features are taken once (batch norm with running
statistics, the reference's model.eval(), unless --test_bn=episode), and a new head (nn.Linear's default init:
weight and bias U(+-1/sqrt(D)), or distLinear) is trained on the support features: --finetune_epochs epochs, each
a fresh random permutation of the support cut into mini-batches of --finetune_batch (the last one smaller), torch
SGD lr --finetune_lr, momentum 0.9, dampening 0.9, weight decay 1e-3 on every head parameter (bias, g included);
mean cross-entropy per mini-batch (methods/baselinefinetune.py). Reported: the query accuracy of that head, one
column (T = 0). The permutations and the head's init are stateless draws seeded by --seed and the task's images, so
evaluating a task twice gives the same number and evaluate changes no state.
"""
import numpy as np
import tensorflow as tf

from infra import adam
from config import Config
from maml import MetaOutput
from learners.protonet import Conv4Learner, mean_xent
from utils import accuracy

FINETUNE_MOMENTUM = 0.9
FINETUNE_DAMPENING = 0.9
FINETUNE_WEIGHT_DECAY = 1e-3
NORM_EPSILON = 1e-5            # distLinear: x / (|x| + 1e-5)
OMNIGLOT_TRAIN_CHARACTERS = 1100


def cosine_scale(num_classes):
    """distLinear's fixed scale: 2 for at most 200 classes, else 10 (Omniglot's thousands of classes)."""
    return 2.0 if num_classes <= 200 else 10.0


def init_head(w, b, cosine):
    """A head from nn.Linear's default draws w [..., D, N], b [..., N]: linear {'w', 'b'}; cosine (distLinear)
    {'v': w, 'g': |w_k| per class [..., N]}, so weight norm starts at the same weight."""
    if cosine:
        return {'v': w, 'g': _norm(w, -2)}
    return {'w': w, 'b': b}


def _norm(x, axis, keepdims=False):
    # sqrt clamped at 1e-24: |x| for any x of any use, and a finite gradient at x = 0
    return tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(x), axis, keepdims=keepdims), 1e-24))


def head_logits(head, features, scale):
    """Logits [..., R, N] of features [..., R, D]: x W + b (linear), or scale * (x / (|x| + 1e-5)) (g v / |v|)
    (cosine; the weight-normed class vectors are the columns)."""
    if 'v' in head:
        x = features / (_norm(features, -1, keepdims=True) + NORM_EPSILON)
        w = head['g'][..., None, :] * head['v'] / _norm(head['v'], -2, keepdims=True)
        return scale * tf.matmul(x, w)
    return tf.matmul(features, head['w']) + head['b'][..., None, :]


def finetune_head(features, labels, seed, epochs, batch, lr, cosine, scale):
    """Trains a new head per task on frozen support features [B, S, D] with one-hot labels [B, S, N].

    Returns the head {name: [B, ...]} after `epochs` epochs of torch SGD (momentum 0.9, dampening 0.9, weight
    decay 1e-3 added to the gradient; the momentum buffer starts as the first gradient) on mini-batches of `batch`
    rows of a fresh per-task permutation (stateless, seeded by `seed` [int64] and the epoch); the loss of each task
    is the mean cross-entropy of its mini-batch. New heads are drawn U(+-1/sqrt(D)) (seeds (seed, -1), (seed, -2)).
    """
    b, s, d = (int(x) for x in features.shape)
    n = int(labels.shape[-1])
    dtype = features.dtype
    bound = 1.0 / np.sqrt(d)
    seed = tf.cast(seed, tf.int64)

    def draw(shape, k):
        return tf.random.stateless_uniform(shape, tf.stack([seed, tf.constant(k, tf.int64)]), -bound, bound, dtype)
    head = init_head(draw([b, d, n], -1), draw([b, n], -2), cosine)
    momentum = {k: tf.zeros_like(v) for k, v in head.items()}

    def epoch(e, head, momentum):
        perm = tf.argsort(tf.random.stateless_uniform([b, s], tf.stack([seed, tf.cast(e, tf.int64)])), -1)
        for start in range(0, s, batch):
            idx = perm[:, start:start + batch]
            x, y = tf.gather(features, idx, batch_dims=1), tf.gather(labels, idx, batch_dims=1)
            with tf.GradientTape() as tape:
                tape.watch(head)
                loss = tf.reduce_sum(mean_xent(head_logits(head, x, scale), y))   # tasks are independent
            grads = tape.gradient(loss, head)
            first = tf.logical_and(tf.equal(e, 0), start == 0)
            new_head, new_momentum = {}, {}
            for k, p in head.items():
                g = grads[k] + FINETUNE_WEIGHT_DECAY * p
                buf = tf.where(first, g, FINETUNE_MOMENTUM * momentum[k] + (1 - FINETUNE_DAMPENING) * g)
                new_head[k], new_momentum[k] = p - lr * buf, buf
            head, momentum = new_head, new_momentum
        return e + 1, head, momentum

    _, head, _ = tf.while_loop(lambda e, *_: e < epochs, epoch, (tf.constant(0), head, momentum))
    return head


def default_base_classes(config):
    """Classes of the pre-training softmax when the caller does not say (it should pass the data generator's
    num_train_classes_total): Omniglot 4 rotations x the meta-train characters, MiniImagenet 64."""
    if config.datasource == 'miniimagenet':
        return 64
    return 4 * (config.num_train_classes if config.num_train_classes > 0 else OMNIGLOT_TRAIN_CHARACTERS)


class Baseline(Conv4Learner):
    """Chen et al.'s Baseline: softmax pre-training over all meta-training classes, a new linear head per task."""
    init_scheme = 'closer_look'
    cosine = False
    trains_on_tasks = False   # pre-trains on mini-batches of all meta-training classes
    batch_split = 'rows'

    @classmethod
    def build(cls, dim_input, dim_output, test_num_updates, config, data_generator):
        """The learner with a head over the data generator's meta-training classes."""
        return cls(dim_input, dim_output, test_num_updates, config,
                   num_base_classes=data_generator.num_train_classes_total)

    def __init__(self, dim_input, dim_output, test_num_updates=0, config=Config(), dtype=tf.float32,
                 num_base_classes=None):
        super().__init__(dim_input, dim_output, test_num_updates, config, dtype)
        self.num_base_classes = int(num_base_classes or default_base_classes(config))
        d = self.embedding_size()
        bound = 1.0 / np.sqrt(d)
        w = self.rng.uniform([d, self.num_base_classes], -bound, bound, tf.float32)
        head = init_head(w, tf.zeros([self.num_base_classes]), self.cosine)   # BaselineTrain: bias 0
        with tf.name_scope('model'):
            self.head = {k: tf.Variable(tf.cast(v, dtype), name='head/' + k) for k, v in head.items()}
        self.scale = cosine_scale(self.num_base_classes)
        self.train_variables = {**self.weights, **{'head/' + k: v for k, v in self.head.items()}}
        self.pretrain_optimizer = adam.Adam(self.train_variables, config.meta_lr, name='Adam')

    def checkpoint_items(self):
        """{name: trackable}: embedding weights, pre-training head, running statistics, the pre-training Adam."""
        return dict(weights=self.weights, head=self.head, running=self.running,
                    pretrain_optimizer=self.pretrain_optimizer)

    def pretrain_gradients(self, images, labels):
        """(loss, {name: gradient} of `train_variables`, batch statistics): the mean cross-entropy of a
        mini-batch (images [batch, dim], one-hot labels [batch, classes]). --distribute replaces it on the
        instance (infra.distribute.distribute_learner: the rows split over the replicas)."""
        with tf.GradientTape() as tape:
            features, stats = self.embed(images[None], training=True)
            loss = tf.reduce_mean(mean_xent(head_logits(self.head, features, self.scale), labels[None]))
        return loss, tape.gradient(loss, self.train_variables), stats

    def row_share_loss(self, images, labels, rows, moments):
        """One replica's share of the pre-training loss under --distribute: the rows `rows` (a slice) of the
        mini-batch images [n, dim], labels [n, classes], embedded with `moments` (the statistics of the whole
        mini-batch). Returns (their cross-entropy summed and divided by n, so that the replicas' shares add up
        to the mean of `pretrain_gradients`; batch statistics)."""
        features, stats = self.embed(images[None, rows], True, moments)
        xent = tf.nn.softmax_cross_entropy_with_logits(labels=labels[None, rows],
                                                       logits=head_logits(self.head, features, self.scale))
        return tf.reduce_sum(xent) / float(int(images.shape[0])), stats

    def _pretrain_step(self, images, labels):
        loss, grads, stats = self.pretrain_gradients(images, labels)
        self.pretrain_optimizer.apply_gradients(grads)
        if self.running:
            self.update_running(stats)
        return loss

    def pretrain_step_on_batch(self, images, labels):
        """One Adam update on an ordinary mini-batch: images [batch, dim_input], one-hot labels
        [batch, num_base_classes]; returns the mean cross-entropy before it. Compiled (XLA if --xla)."""
        return self._compiled('pretrain', self._pretrain_step)(images, labels)

    def metatrain_step(self, inputa, labela, inputb, labelb):
        raise NotImplementedError(f'{type(self).__name__} trains on ordinary mini-batches: call '
                                  f'pretrain_step_on_batch(images, labels) with data_generator.make_class_batches()')

    def _evaluate(self, inputa, labela, inputb, labelb):
        rows_a = int(inputa.shape[1])
        features, _ = self.embed(tf.concat([inputa, inputb], 1), training=False)
        features = tf.stop_gradient(features)
        seed = tf.cast(tf.bitcast(tf.cast(tf.reduce_sum(inputa), tf.float32), tf.int32), tf.int64) \
            + 1000003 * max(self.config.seed, 0)
        c = self.config
        n = int(labela.shape[-1])
        scale = cosine_scale(n)
        head = finetune_head(features[:, :rows_a], labela, seed, c.finetune_epochs, c.finetune_batch,
                             c.finetune_lr, self.cosine, scale)
        logits = head_logits(head, features[:, rows_a:], scale)
        losses, accs = mean_xent(logits, labelb), accuracy(logits, labelb)
        return MetaOutput(tf.reduce_mean(losses), tf.zeros([0], self.dtype), tf.reduce_mean(accs),
                          tf.zeros([0], tf.float32), losses, None, None, logits[None])

    def evaluate(self, inputa, labela, inputb, labelb):
        """MetaOutput with T = 0 after fine-tuning a new head on each task's support: total_loss1 /
        total_accuracy1 = mean query loss / accuracy, lossesa [B] per task, outputbs [1, B, NQ, N]. Changes nothing."""
        return self._compiled('evaluate', self._evaluate)(inputa, labela, inputb, labelb)


class BaselinePP(Baseline):
    """Baseline++: the cosine classifier (distLinear) in pre-training and fine-tuning."""
    cosine = True
