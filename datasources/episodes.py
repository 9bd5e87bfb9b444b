"""The tasks of the image sources: how many images a task needs, and the stateless task sampler."""
import numpy as np

from datasources.common import DataError

NUM_EVAL_TASKS = 600          # the original's make_data_tensor(train=False) / NUM_TEST_POINTS
EVAL_SEED = 1                 # seed of the fixed evaluation tasks (independent of config.seed)

IMAGES_PER_CLASS = {'omniglot': 20, 'miniimagenet': 600}   # drawings per character / images per class


def check_sizes(datasource, samples_per_class, k):
    """Raises DataError when a task's S = K + query images per class exceed what every class of the
    dataset has (Omniglot: 20 drawings per character; MiniImagenet: 600 images per class), so no
    data, complete or not, can hold such a task. k: the support part K (for the message)."""
    have = IMAGES_PER_CLASS.get(datasource)
    if have is None or samples_per_class <= have:
        return
    what = 'drawings per character' if datasource == 'omniglot' else 'images per class'
    q = samples_per_class - k
    split = (f'K={k} support + {q} query = {samples_per_class}' if 0 <= q < samples_per_class
             else f'{samples_per_class}')
    raise DataError(f'a task needs {split} images of each class, but {datasource} has only {have} {what}: '
                    f'lower --update_batch_size or --num_query so that K + query <= {have} '
                    f'(the data itself is fine)')


# ----------------------------------------------------------------------------------------------
# Task sampling (TensorFlow, stateless and vectorised: no Python runs inside the tf.data pipeline)
# ----------------------------------------------------------------------------------------------

def sample_tasks(seed, num_tasks, classes, counts, offsets, n, s, rotate):
    """Indices of `num_tasks` N-way tasks with S examples per class, in the original's row layout.

    seed: int64 [2] (stateless random ops: the result is a pure function of it). classes: global
    class ids of the split; counts / offsets: images per class and first image row, by global class
    id. Per task: N distinct classes in random order (class i gets label i, as the original's
    `random.sample` + `random.shuffle`), S distinct images per class in random order, one rotation
    k in 0..3 per class (zeros unless `rotate`), then for each k in 0..S-1 a random class order
    (the original's `tf.random_shuffle(range(N))`): row k*N + r holds the k-th image of class
    perm[k, r]. Returns int64 tensors (image row [T, N*S], label [T, N*S], rotation [T, N*S],
    classes [T, N]).
    """
    import tensorflow as tf
    classes = np.asarray(classes, np.int64)
    maxc = int(np.max(counts[classes]))
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)
    t = num_tasks
    keys = tf.random.stateless_uniform([t, len(classes)], seeds[0], dtype=tf.float64)
    chosen = tf.math.top_k(-keys, n).indices                      # the N smallest keys, in key order
    cls = tf.gather(tf.constant(classes), chosen)                  # [T, N]
    cnt = tf.gather(tf.constant(counts, tf.int64), cls)
    ikeys = tf.random.stateless_uniform([t, n, maxc], seeds[1], dtype=tf.float64)
    ikeys = tf.where(tf.range(maxc, dtype=tf.int64) >= cnt[..., None], tf.constant(2.0, tf.float64), ikeys)
    pick = tf.cast(tf.math.top_k(-ikeys, s).indices, tf.int64)    # [T, N, S]
    img = tf.gather(tf.constant(offsets, tf.int64), cls)[..., None] + pick
    if rotate:
        rot = tf.random.stateless_uniform([t, n], seeds[2], minval=0, maxval=4, dtype=tf.int64)
    else:
        rot = tf.zeros([t, n], tf.int64)
    label = tf.cast(tf.argsort(tf.random.stateless_uniform([t, s, n], seeds[3], dtype=tf.float64), axis=2),
                    tf.int64)                                      # [T, S, N]: block k's class order
    img_rows = tf.gather(tf.transpose(img, [0, 2, 1]), label, batch_dims=2)
    rot_rows = tf.gather(rot, label, batch_dims=1)
    flat = [t, s * n]
    return tf.reshape(img_rows, flat), tf.reshape(label, flat), tf.reshape(rot_rows, flat), cls

