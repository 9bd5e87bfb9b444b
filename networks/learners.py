"""Every learner on a Keras model: the mix-ins that `networks.learner_class` puts in front of a learner class.

- `KerasInnerLoop` (maml.MAML and its subclasses: MAML++, Meta-SGD, ANIL): the model's trainable variables are
  the meta-parameters; those of normalisation layers (gamma, beta) are meta-learned but not adapted, as MAML's
  batch-norm offsets, and every other one is a fast weight. `forward` runs the model through stateless_call with
  training=True (batch statistics, as MAML's batch norm always) on each task's fast weights (a Python loop over
  the tasks). ANIL's head is the model's last layer that has trainable variables. Non-trainable variables
  (`network_state`: moving statistics, dropout seeds) thread through the calls of a meta-train step in order and
  are written once at its end (MAML never reads the moving statistics; a checkpoint keeps them for export);
  evaluation reads them and writes nothing.
- `KerasReptile`: Reptile (--protocol=maml) on the KerasInnerLoop MAML's network.
- `KerasEmbedding` (protonet.Conv4Learner and its subclasses: ProtoNets, Matching Networks, Baseline,
  Baseline++): the model, built with num_outputs=None, is the embedding / backbone and its flattened output the
  features (D = its width). Training mode uses batch statistics and moves the moving averages (the learners'
  `running`); evaluation uses the moving averages (--test_bn=running) or the episode's statistics (episode).
"""
import tensorflow as tf

import maml
import networks
from learners import protonet
from learners import reptile


def _variable_name(key):
    return key.replace("'", '_')


class KerasInnerLoop:
    """Mix-in for maml.MAML subclasses: the network of `config.network` instead of the paper's (construct_network)."""
    per_step_bn_gamma = False       # --per_step_bn copies the model's own norm parameters per step, adds none

    def construct_network(self, rng):
        config = self.config
        net = self.keras_net = networks.build(config, self.dim_input, self.dim_output)
        if config.per_step_bn and not net.norm_keys:
            raise ValueError(f'--per_step_bn needs normalisation layers (BatchNormalization, LayerNormalization, '
                             f'GroupNormalization) with gamma or beta in the model, and --network={config.network} '
                             f'has none; drop --per_step_bn')
        init, norm = net.initial_weights(), set(net.norm_keys)
        with tf.name_scope('model'):
            self.weights = {k: tf.Variable(tf.cast(init[k], self.dtype), name=_variable_name(k))
                            for k in net.keys if k not in norm}
            self.norm_weights = {k: tf.Variable(tf.cast(init[k], self.dtype), name=_variable_name(k))
                                 for k in net.keys if k in norm}
            self.network_state = {k: tf.Variable(v, trainable=False, name=_variable_name(k))
                                  for k, v in net.initial_state().items()}
        self._norm_scopes = list(dict.fromkeys(k.rsplit('/', 1)[0] for k in self.norm_weights))
        self._state = None          # while a meta-train step is traced: the state threading through its calls
        self.dim_hidden = None
        self.forward = self.forward_keras

    def checkpoint_items(self):
        items = super().checkpoint_items()
        if self.network_state:
            items['network_state'] = self.network_state
        return items

    def tf1_names(self):
        raise ValueError('a Keras network has no TF1 variable names')

    def head_keys(self):
        """ANIL's head: the variables of the model's last layer that has trainable variables."""
        head = self.keras_net.head_keys
        if any(k in self.norm_weights for k in head):
            raise ValueError(f'ANIL adapts the model\'s last layer with weights, and in --network='
                             f'{self.config.network} that is a normalisation layer; end the model with a '
                             f'Dense (or other) output layer')
        return head

    def forward_keras(self, inp, weights):
        """Outputs [B, rows, dim_output] of the model for flattened inputs [B, rows, dim_input] and per-task
        weights {key: [B, ...]} (every non-norm key), with the norm parameters of `_norm` (MAML++'s per-step rows)
        shared by the tasks; training=True."""
        b, rows = int(inp.shape[0]), int(inp.shape[1])
        x = tf.reshape(inp, [b, rows] + list(self.keras_net.input_shape))
        norm = {}
        for scope in self._norm_scopes:
            for p, v in self._norm(scope).items():
                if p in ('beta', 'gamma'):
                    norm[scope + '/' + p] = v
        threading = self._state is not None
        state = self._state if threading else {k: v.read_value() for k, v in self.network_state.items()}
        out, state = self.keras_net.tasks(weights, state, x, training=True, common=norm)
        if threading:
            self._state = state
        return out

    def _metatrain_step(self, inputa, labela, inputb, labelb):
        """The learner's step, the network's state threaded through its calls and written at the end (the
        per-task reference path and --distribute read it and write nothing)."""
        thread = bool(self.network_state) and self.batched and getattr(self, 'strategy', None) is None
        self._state = {k: v.read_value() for k, v in self.network_state.items()} if thread else None
        try:
            loss = super()._metatrain_step(inputa, labela, inputb, labelb)
            if self._state is not None:
                for k, v in self.network_state.items():
                    v.assign(self._state[k])
        finally:
            self._state = None
        return loss


class KerasReptile:
    """Mix-in for reptile.Reptile: --protocol=maml's network is the Keras MAML's (its fast weights and norm
    parameters are Reptile's weights, all adapted by the inner Adam)."""
    net_class = None    # set by keras_class

    def checkpoint_items(self):
        items = super().checkpoint_items()
        if self.net.network_state:
            items['network_state'] = self.net.network_state
        return items


class KerasEmbedding:
    """Mix-in for protonet.Conv4Learner subclasses: the model of `config.network` (num_outputs=None) is the
    embedding; `running` holds its non-trainable variables."""

    def construct_embedding(self, rng):
        net = self.keras_net = networks.build(self.config, self.dim_input, None)
        init = net.initial_weights()
        with tf.name_scope('model'):
            self.weights = {k: tf.Variable(tf.cast(init[k], self.dtype), name=_variable_name(k)) for k in net.keys}
            self.running = {k: tf.Variable(v, trainable=False, name=_variable_name(k))
                            for k, v in net.initial_state().items()}

    def embedding_size(self):
        return self.keras_net.output_size

    def embed(self, images, training):
        """(features [B, rows, D], the new state {key: tensor}) of images [B, rows, dim]: training mode (batch
        statistics, per task) when `training` or --test_bn=episode, else the moving averages (tasks folded into
        one call)."""
        b, rows = int(images.shape[0]), int(images.shape[1])
        x = tf.reshape(images, [b, rows] + list(self.keras_net.input_shape))
        state = {k: v.read_value() for k, v in self.running.items()}
        return self.keras_net.tasks(self.weights, state, x, training or self.config.test_bn == 'episode',
                                    shared=True)

    def update_running(self, stats):
        """Writes the state a training pass returned."""
        for k, v in self.running.items():
            v.assign(stats[k])


_CLASSES = {}


def keras_class(base):
    """`base` (a learner class) with the mix-in that runs it on a Keras network (one class per base)."""
    if base not in _CLASSES:
        if issubclass(base, maml.MAML):
            mixin, extra = KerasInnerLoop, {}
        elif issubclass(base, reptile.Reptile):
            mixin, extra = KerasReptile, {'net_class': keras_class(maml.MAML)}
        elif issubclass(base, protonet.Conv4Learner):
            mixin, extra = KerasEmbedding, {}
        else:
            raise ValueError(f'{base.__name__} cannot run a Keras network')
        _CLASSES[base] = type('Keras' + base.__name__, (mixin, base),
                              dict(extra, __doc__=f'{base.__name__} on a Keras model ({mixin.__name__}).',
                                   __module__=__name__))
    return _CLASSES[base]
