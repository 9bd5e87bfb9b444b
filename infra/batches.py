"""The meta-batch streams the loop trains and evaluates on, in MAML's format (inputa, labela, inputb,
labelb; float32 tensors [B, rows, dim]), built from the data generator as each protocol draws them.
"""
import itertools

import numpy as np

import config as config_lib


def _split(inputs, labels, rows_a):
    """(inputa, labela, inputb, labelb): the first `rows_a` rows of every task are a, the rest b."""
    return inputs[:, :rows_a], labels[:, :rows_a], inputs[:, rows_a:], labels[:, rows_a:]


def sinusoid_batch(data_generator, config):
    """One sinusoid meta-batch as float32 tensors (inputa, labela, inputb, labelb), as the original fed it.

    With `--baseline=oracle` every input row gets the task's amplitude and phase as columns 1, 2.
    """
    import tensorflow as tf
    batch_x, batch_y, amp, phase = data_generator.generate()
    if config.baseline == 'oracle':
        batch_x = np.concatenate([batch_x, np.zeros([batch_x.shape[0], batch_x.shape[1], 2])], 2)
        batch_x[:, :, 1] = amp[:, None]
        batch_x[:, :, 2] = phase[:, None]
    rows_a = data_generator.num_classes * config.update_batch_size
    return [tf.constant(v, tf.float32) for v in _split(batch_x, batch_y, rows_a)]


def stream(experiment, train):
    """Endless iterator of meta-batches (inputa, labela, inputb, labelb) from the data generator.

    Classification batches come from the generator's tf.data pipeline (prefetched there; nothing
    is added after its last stage, which counts delivered batches for the checkpointed state).
    The dataset is made here, not lazily, so that a DataError comes before anything is written.
    """
    dg, rc, model = experiment.data_generator, experiment.run_config, experiment.model
    shots = model.meta_train_shots(rc) if train else rc.update_batch_size
    if config_lib.regression(rc):
        return (sinusoid_batch(dg, rc) for _ in itertools.count())
    if train and not model.trains_on_tasks:   # e.g. the fine-tuning baselines pre-train on mini-batches
        return iter(dg.make_class_batches(rc.batch_size))
    if rc.protocol == 'reptile':
        return (reptile_batch(dg, rc, shots, train) for _ in itertools.count())
    rows_a = dg.num_classes_for(train) * shots
    return (_split(images, labels, rows_a) for images, labels in dg.make_data_tensor(train=train))


def reptile_batch(data_generator, config, shots, train):
    """A meta-batch of openai/supervised-reptile's tasks (`--protocol=reptile`) in MAML's batch format.

    Training: `meta_batch_size` tasks of N classes x train_shots examples (the reference's mini-dataset; `shots`: the learner's train_shots) as a,
    and as b one example per class of it (the step does not see b; the summaries measure the adapted model
    there, as the training task has no held-out query). Evaluation: one task of N x (K + 1) examples split as the
    reference's _split_train_test: the first example of each class is the query (b), the rest the support (a).
    """
    import tensorflow as tf
    dg, n = data_generator, config.num_classes
    tasks = []
    for _ in range(config.meta_batch_size if train else 1):
        images, labels = dg.sample_mini_dataset(n, shots + (0 if train else 1), train=train)
        images = images.reshape(len(images), -1)
        onehot = np.eye(n, dtype=np.float32)[labels]
        first = np.array([list(labels).index(c) for c in range(n)])   # each class's first example
        rest = np.setdiff1d(np.arange(len(labels)), first)
        tasks.append((images, onehot, images[first], onehot[first]) if train else
                     (images[rest], onehot[rest], images[first], onehot[first]))
    return [tf.constant(np.stack(v), tf.float32) for v in zip(*tasks)]
