"""Keras layers whose derivatives are exact to any order, for meta-learning through `stateless_call`.

MAML's second-order meta-gradient differentiates the network twice. Two stock Keras layers get that wrong on the
TensorFlow backend, and these replace them (the built-in networks use them; a user's model may too):

- `BatchNormalization`: Keras computes the batch variance with `tf.nn.moments`, whose shift is a stop-gradient
  mean, so its second derivative lacks the -2/n^2 term (utils.moments_tf10). This layer takes the moments from
  `utils.moments_tf10`, as the functional path does; everything else is `keras.layers.BatchNormalization`.
- `MaxPool2x2`: XLA's MaxPoolGradGrad is not exact (it made the MiniImagenet meta-gradient miss the golden by 8e-2);
  this is `utils.max_pool_2x2`, four strided slices and their maximum.

`DropBlock` (Ghiasi et al. 2018) is MetaOptNet's regulariser for ResNet-12 (networks/resnet12.py).
"""
import keras
import tensorflow as tf

import utils


@keras.saving.register_keras_serializable(package='maml_tf2')
class BatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization with moments exact to second order (utils.moments_tf10); no masks."""

    def _moments(self, inputs, mask):
        if mask is not None:
            raise ValueError('networks.layers.BatchNormalization takes no mask')
        axes = sorted(a % len(inputs.shape) for a in self._reduction_axes)
        mean, variance = utils.moments_tf10(inputs, axes)
        return tf.squeeze(mean, axes), tf.squeeze(variance, axes)


@keras.saving.register_keras_serializable(package='maml_tf2')
class MaxPool2x2(keras.layers.Layer):
    """2x2 / stride-2 'VALID' max-pool of NHWC inputs (utils.max_pool_2x2): [n, H, W, C] -> [n, H//2, W//2, C]."""

    def call(self, inputs):
        return utils.max_pool_2x2(inputs)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return n, None if h is None else h // 2, None if w is None else w // 2, c


def block_mask(seeds, shape, gamma, block_size):
    """DropBlock's keep mask [n, H, W, C] (1 keep, 0 drop): block seeds ~ Bernoulli(gamma) on the
    (H - bs + 1) x (W - bs + 1) positions, each dropping the bs x bs square whose top-left corner it is
    (MetaOptNet's `_compute_block_mask`). `seeds`: a stateless seed [2]."""
    n, h, w, c = shape
    drop = tf.cast(tf.random.stateless_uniform([n, h - block_size + 1, w - block_size + 1, c], seeds) < gamma,
                   tf.float32)
    pad = block_size - 1
    drop = tf.pad(drop, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    return 1.0 - tf.nn.max_pool2d(drop, block_size, 1, 'VALID')


@keras.saving.register_keras_serializable(package='maml_tf2')
class DropBlock(keras.layers.Layer):
    """DropBlock as MetaOptNet's ResNet-12 (models/ResNet12_embedding.py): in training, drop bs x bs blocks with
    gamma = (1 - keep) / bs^2 * fs^2 / (fs - bs + 1)^2 and rescale by (elements / kept); keep annealed linearly
    from 1 to 1 - drop_rate over `anneal_steps` training calls (its 20 * 2000 batches), counted by a non-trainable
    variable (returned by stateless_call, like batch norm's statistics). block_size 1 is plain dropout with the
    same annealing off (MetaOptNet's blocks 1-2: F.dropout(p=drop_rate)). Identity at inference."""

    def __init__(self, drop_rate=0.1, block_size=5, anneal_steps=40000, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.drop_rate, self.block_size, self.anneal_steps = float(drop_rate), int(block_size), int(anneal_steps)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.calls = self.add_weight(shape=(), initializer='zeros', dtype='float32', trainable=False, name='calls')

    def call(self, inputs, training=False):
        if not training or self.drop_rate <= 0:
            return inputs
        if self.block_size == 1:
            return keras.random.dropout(inputs, self.drop_rate, seed=self.seed_generator)
        calls = self.calls.value
        self.calls.assign(calls + 1.0)
        keep = tf.maximum(1.0 - self.drop_rate / self.anneal_steps * calls, 1.0 - self.drop_rate)
        fs = int(inputs.shape[1])
        bs = min(self.block_size, fs)     # small inputs: a block no larger than the map
        gamma = (1.0 - keep) / bs ** 2 * fs ** 2 / (fs - bs + 1) ** 2
        mask = block_mask(tf.cast(self.seed_generator.next(), tf.int32), tf.shape(inputs), gamma, bs)
        count = tf.cast(tf.size(mask), inputs.dtype)
        return inputs * mask * (count / tf.maximum(tf.reduce_sum(mask), 1.0))

    def get_config(self):
        return dict(super().get_config(), drop_rate=self.drop_rate, block_size=self.block_size,
                    anneal_steps=self.anneal_steps)
