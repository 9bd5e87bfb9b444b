"""maml-tf2 as a library: meta-train your own keras.Model on your own task batches, with any learner, in your
own loop, and adapt it to a new task.

    import api
    learner = api.MetaLearner(cnn, input_shape=(28, 28, 1), num_classes=5, method='maml', update_lr=0.4)
    for inputa, labela, inputb, labelb in my_tasks():      # [B, N*K, 28, 28, 1] float32, [B, N*K] int, ...
        loss = learner.meta_train_step(inputa, labela, inputb, labelb)
    logits = learner.adapt_and_predict(support, support_labels, query)    # [N*Q, N]
    learner.save('ckpt/model'); learner.restore('ckpt/model')

(`num_base_classes=`: the baselines' pre-training classes.) `cnn(input_shape, num_outputs) -> keras.Model` is what `--network=MODULE:FUNCTION` takes (docs/NETWORKS.md; the
metric learners ask for num_outputs=None, the embedding), or a built-in name ('conv4', 'resnet12', ...). Every
other keyword is a main.py flag (a `config.Config` field: meta_lr, num_updates, stop_grad, distance, ...), so a
learner here is the one main.py trains, step for step. Regression: `regression=True`, labels [B, rows, d_out].
"""
import numpy as np

import config as config_lib
from config import Config

REGRESSION_SOURCE = 'api:regression'   # a datasource of the Python kind: the learners treat the tasks as regression
IMAGE_SOURCE = 'folder'                # an image datasource whose shape comes from --img_size / --channels


class MetaLearner:
    """One learner of `method` on the network `network`; `model` is the learner main.py would build."""

    def __init__(self, network, input_shape, num_classes=1, method='maml', regression=False, num_outputs=None,
                 num_base_classes=None, **flags):
        import networks
        from learners import learner_class
        name = network if isinstance(network, str) else networks.register(network)
        self.input_shape, self.regression = tuple(input_shape), regression
        image = {} if regression else dict(img_size=int(input_shape[0]), channels=int(input_shape[-1]))
        self.config = Config(method=method, network=name, num_classes=num_classes,
                             datasource=REGRESSION_SOURCE if regression else IMAGE_SOURCE, **image, **flags)
        self.dim_output = (num_outputs or 1) if regression else num_classes
        cls = learner_class(self.config)
        args = (int(np.prod(input_shape)), self.dim_output, config_lib.test_num_updates(self.config), self.config)
        self.num_base_classes = num_base_classes or num_classes    # the baselines' pre-training classes
        self.model = cls(*args, num_base_classes=self.num_base_classes) if hasattr(cls, 'build') else cls(*args)

    def _rows(self, x):
        """[B, rows, H*W*C] float32 of inputs [B, rows, *input_shape]."""
        x = np.asarray(x, np.float32)
        return x.reshape(x.shape[0], x.shape[1], -1)

    def _labels(self, y):
        """One-hot [B, rows, N] float32 of class labels [B, rows] (regression: the targets as they are)."""
        if self.regression:
            return np.asarray(y, np.float32)
        return np.eye(self.config.num_classes, dtype=np.float32)[np.asarray(y, np.int64)]

    def meta_train_step(self, inputa, labela, inputb, labelb):
        """One meta-iteration on B tasks (support inputa [B, N*K, ...], labela [B, N*K]; query inputb, labelb);
        returns the objective before the update (float). The fine-tuning baselines pre-train instead:
        `pretrain_step(images, labels)`."""
        import tensorflow as tf
        if not self.model.trains_on_tasks:
            raise ValueError(f'--method={self.config.method} pre-trains on mini-batches of classes, not on tasks; '
                             f'call pretrain_step(images [n, ...], labels [n]) instead')
        batch = [tf.constant(v) for v in (self._rows(inputa), self._labels(labela), self._rows(inputb),
                                          self._labels(labelb))]
        return float(self.model.metatrain_step(*batch))

    def pretrain_step(self, images, labels):
        """One pre-training step of a fine-tuning baseline on a mini-batch images [n, ...], labels [n] of all the
        training classes (0..num_base_classes-1); returns its loss."""
        import tensorflow as tf
        x = self._rows(np.asarray(images)[None])[0]
        onehot = np.eye(self.num_base_classes, dtype=np.float32)[np.asarray(labels, np.int64)]
        return float(self.model.pretrain_step_on_batch(tf.constant(x), tf.constant(onehot)))

    def adapt_and_predict(self, support, support_labels, query):
        """Logits (regression: outputs) [Q, N] of the queries [Q, ...] after the learner's own test-time procedure on
        the support set [S, ...] with labels [S]: main.py's evaluation of this one task."""
        import tensorflow as tf
        inputa, inputb = self._rows(np.asarray(support)[None]), self._rows(np.asarray(query)[None])
        labela = self._labels(np.asarray(support_labels)[None])
        labelb = np.zeros(inputb.shape[:2] + labela.shape[2:], np.float32)   # no logit depends on the query labels
        out = self.model.evaluate(*[tf.constant(v) for v in (inputa, labela, inputb, labelb)])
        return out.outputbs[-1][0].numpy()

    def save(self, prefix):
        """Writes everything training needs to continue (weights, optimizer state) as a checkpoint; returns its path."""
        import tensorflow as tf
        return tf.train.Checkpoint(**self.model.checkpoint_items()).write(prefix)

    def restore(self, prefix):
        """Loads what `save` wrote."""
        import tensorflow as tf
        tf.train.Checkpoint(**self.model.checkpoint_items()).read(prefix).assert_existing_objects_matched()
