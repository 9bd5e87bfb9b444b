"""Pure building blocks of the network and its losses, numerically as in the original TF1 code.

Every function here is a pure function of tensors (no variables, no flags). Activations carry a
leading task axis, [tasks, rows, *features], and weights a matching [tasks, ...] axis, so the
whole meta-batch runs as one batched computation while every statistic and loss stays per task,
exactly as the original's per-task `map_fn` computed it.
"""
import numpy as np
import tensorflow as tf

BATCH_NORM_EPSILON = 0.001     # tf.contrib.layers.batch_norm default
LAYER_NORM_EPSILON = 1e-12     # tf.contrib.layers.layer_norm (TF 1.x)


def moments_tf10(x, axes):
    """Mean and biased variance over `axes` (kept as size-1 dims), by the TF 1.0 `tf.nn.moments` algorithm.

    Returns `(mean, variance)`. The shift is a stop-gradient mean and the variance is formed as
    E[(x-s)^2] - (E[x-s])^2. The second term is zero in value but carries the -2/n^2 Hessian term:
    modern `tf.nn.moments` drops it (its second derivative is wrong, see the golden README), and
    MAML's meta-gradient runs through exactly that second derivative.
    """
    shift = tf.stop_gradient(tf.reduce_mean(x, axes, keepdims=True))
    count = float(np.prod([x.shape[a] for a in axes]))
    divisor = tf.constant(1.0 / count, x.dtype)
    shifted = x - shift
    shifted_mean = pairwise_sum(shifted, axes) * divisor
    mean = shifted_mean + shift
    variance = pairwise_sum(tf.square(shifted), axes) * divisor - tf.square(shifted_mean)
    return mean, variance


PAIRWISE_LEAF = 8   # sequential sums of at most this many values at the leaves of the tree


def pairwise_sum(x, axes):
    """reduce_sum over the contiguous `axes` of `x` (kept as size-1 dims), summed as a pairwise tree.

    The reduced axes are flattened to one axis of n values, zero-padded to a length leaf * 2^d,
    halved d times (first half + second half), and the last <= PAIRWISE_LEAF values summed by
    reduce_sum. The rounding error grows like log2(n) instead of n: XLA's CPU reduce adds the n
    values one after the other, and merges a reduce of a reduce into one, so a plain two-stage
    sum does not help under XLA. Adding zeros is exact and slices/adds are never reassociated.
    """
    axes = sorted(a % len(x.shape) for a in axes)
    assert axes == list(range(axes[0], axes[-1] + 1)), axes
    shape = x.shape.as_list()
    n = int(np.prod([shape[a] for a in axes]))
    before, after = shape[:axes[0]], shape[axes[-1] + 1:]
    y = tf.reshape(x, before + [n] + after)
    axis = len(before)
    length, depth = n, 0
    while length > PAIRWISE_LEAF:
        length, depth = -(-length // 2), depth + 1
    padded = length << depth
    if padded > n:
        pads = [[0, 0]] * len(y.shape)
        pads[axis] = [0, padded - n]
        y = tf.pad(y, pads)
    for _ in range(depth):
        half = y.shape[axis] // 2
        y = _slice(y, axis, 0, half) + _slice(y, axis, half, 2 * half)
    total = tf.reduce_sum(y, axis, keepdims=True)
    return tf.reshape(total, before + [1] * len(axes) + after)


def _slice(x, axis, start, stop):
    """x[..., start:stop, ...] along `axis`."""
    index = [slice(None)] * len(x.shape)
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def _batch_normalization(x, mean, variance, offset, scale, epsilon):
    """tf.nn.batch_normalization's formula: x * inv + (offset - mean * inv)."""
    inv = tf.math.rsqrt(variance + epsilon)
    if scale is not None:
        inv = inv * scale
    return x * inv + (offset - mean * inv)


def normalize(inp, norm, norm_weights=None, activation=tf.nn.relu, feature_rank=1):
    """Returns `activation(norm(inp))`, with the original's normalisation semantics.

    `inp` is [..., batch, *features] where `feature_rank` counts the feature axes (3 for NHWC
    conv activations, 1 for fc). batch_norm: training-mode statistics over the batch axis and
    spatial axes of this very batch (the original always ran `is_training=True`), offset `beta`,
    no scale, eps 1e-3. layer_norm: statistics over all feature axes per example, `beta` and
    `gamma`, eps 1e-12. 'None': activation only. `norm_weights` holds `beta` (and `gamma`).

    Optional batch_norm keys of `norm_weights` (absent in MAML, whose numbers they leave alone):
    `gamma`, a scale [C] (MAML++ per-step weights); `mean` and `variance` [C], given statistics
    used instead of the batch's (MAML++ running statistics at evaluation); `moments`, a list to
    which (batch mean, batch biased variance, count) are appended, the moments [..., 1, (1, 1,) C]
    as computed here and count the number of values each was taken over (MAML++ running-stat
    updates; a trace-time record, the values are not changed).
    """
    rank = len(inp.shape)
    if norm == 'batch_norm':
        if norm_weights.get('mean') is not None:
            mean, var = norm_weights['mean'], norm_weights['variance']
        else:
            axes = list(range(rank - feature_rank - 1, rank - 1))
            mean, var = moments_tf10(inp, axes)
            if norm_weights.get('moments') is not None:
                norm_weights['moments'].append((mean, var, int(np.prod([inp.shape[a] for a in axes]))))
        out = _batch_normalization(inp, mean, var, norm_weights['beta'], norm_weights.get('gamma'),
                                   BATCH_NORM_EPSILON)
    elif norm == 'layer_norm':
        mean, var = moments_tf10(inp, list(range(rank - feature_rank, rank)))
        out = _batch_normalization(inp, mean, var, norm_weights['beta'], norm_weights['gamma'],
                                   LAYER_NORM_EPSILON)
    elif norm == 'None':
        out = inp
    else:
        raise ValueError(f'unknown norm {norm!r}')
    return activation(out) if activation is not None else out


def _same_padding(size, stride, k=3):
    """(output size, pad before, pad after) of TF's 'SAME' padding."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


def conv2d_per_task(inp, kernel, stride):
    """3x3 'SAME' convolution with one kernel per task: [B, n, H, W, C] x [B, 3, 3, C, F] -> [B, n, H', W', F].

    Written as im2col (nine strided slices) and one batched matmul per layer: every op in it
    is a plain slice or matmul, so XLA compiles it well and autodiff through it is exact to any
    order, where grouped convolutions compile badly on CPU (see notes/cpu-speed-probe.md).
    """
    b, n, h, w, c = inp.shape
    f = kernel.shape[-1]
    oh, top, bottom = _same_padding(h, stride)
    ow, left, right = _same_padding(w, stride)
    padded = tf.pad(inp, [[0, 0], [0, 0], [top, bottom], [left, right], [0, 0]])
    taps = [padded[:, :, dy:dy + (oh - 1) * stride + 1:stride, dx:dx + (ow - 1) * stride + 1:stride, :]
            for dy in range(3) for dx in range(3)]
    patches = tf.reshape(tf.stack(taps, axis=4), [b, n * oh * ow, 9 * c])   # (dy, dx, c) order = kernel's
    out = tf.matmul(patches, tf.reshape(kernel, [b, 9 * c, f]))
    return tf.reshape(out, [b, n, oh, ow, f])


def max_pool_2x2(inp):
    """2x2 / stride-2 'VALID' max-pool over axes (-3, -2), as tf.nn.max_pool2d but exact to second order under XLA.

    Written as the maximum of four strided slices: its gradient goes to the first maximum in
    row-major order on ties, like MaxPool's, and its second derivative is exact, whereas XLA's
    MaxPoolGradGrad is not (it made the MiniImagenet meta-gradient miss the golden by 8e-2
    instead of 2e-3).
    """
    h, w = inp.shape[-3] // 2 * 2, inp.shape[-2] // 2 * 2
    x = inp[..., :h, :w, :]
    return tf.maximum(tf.maximum(x[..., 0::2, 0::2, :], x[..., 0::2, 1::2, :]),
                      tf.maximum(x[..., 1::2, 0::2, :], x[..., 1::2, 1::2, :]))


def conv_block(inp, cweight, bweight, norm, norm_weights, max_pool):
    """One conv layer of the original: 3x3 'SAME' conv + bias -> norm -> ReLU [-> 2x2 max-pool].

    `inp` is [B, n, H, W, C], `cweight` [B, 3, 3, C, F], `bweight` [B, F]; returns
    [B, n, H', W', F] with H' = ceil(H/2): stride 2 without max-pool, stride 1 then a 2x2/2
    'VALID' max-pool with it. Normalisation statistics are per task.
    """
    conv_output = conv2d_per_task(inp, cweight, 1 if max_pool else 2) + bweight[:, None, None, None, :]
    normed = normalize(conv_output, norm, norm_weights, tf.nn.relu, feature_rank=3)
    return max_pool_2x2(normed) if max_pool else normed


def mse(pred, label):
    """Mean squared error over all points of each task: [B, rows, 1] -> [B], as the original `mse`."""
    return tf.reduce_mean(tf.square(pred - label), axis=[-2, -1])


def xent(pred, label, update_batch_size):
    """Per-row softmax cross-entropy divided by K (`update_batch_size`): [B, rows, N] -> [B, rows].

    The original divides by FLAGS.update_batch_size and returns the vector; `tf.gradients` of
    a vector differentiates its sum, so the loss a task descends is sum_rows(CE) / K. Callers
    sum it explicitly for gradients (see maml.task_loss).
    """
    return tf.nn.softmax_cross_entropy_with_logits(labels=label, logits=pred) / update_batch_size


def accuracy(logits, labels):
    """Per task, the fraction of rows whose argmax(softmax(logits)) equals argmax(labels): [B, rows, N] -> [B]."""
    pred = tf.argmax(tf.nn.softmax(logits), -1)
    return tf.reduce_mean(tf.cast(tf.equal(pred, tf.argmax(labels, -1)), tf.float32), -1)


# ---- initialisers of the original (values, not Keras objects, so a seeded Generator drives them) ----

def glorot_uniform(rng, shape):
    """contrib xavier_initializer(_conv2d): U(+-sqrt(6/(fan_in+fan_out))), conv fans include k*k."""
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(shape, -limit, limit, tf.float32)


def truncated_normal(rng, shape, stddev):
    """tf.truncated_normal(shape, stddev): normal values redrawn beyond two standard deviations."""
    return rng.truncated_normal(shape, 0.0, stddev, tf.float32)


def random_normal(rng, shape):
    """tf.random_normal(shape): standard normal (the original's omniglot `w5`)."""
    return rng.normal(shape, 0.0, 1.0, tf.float32)
