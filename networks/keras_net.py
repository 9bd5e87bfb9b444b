"""Any built `keras.Model` as a pure function of its weights, for meta-learning (Keras 3 `stateless_call`).

`KerasNetwork(model, input_shape)` names the model's variables by their Keras paths and runs

    outputs, new_state = net(weights, state, x, training=...)

through `model.stateless_call(trainable, non_trainable, x, training=training)`: `weights` {key: tensor} holds a value
for every trainable variable (fast weights are plain tensors, so nested `tf.GradientTape`s give second order) and
`state` {key: tensor} one for every non-trainable variable (batch-norm moving statistics, dropout seed states);
`new_state` is what the model would have written (stateless_call returns it instead of assigning it). `training`
is always passed explicitly: stateless_call calls `model.call` directly, so Keras's default does not apply.

`tasks(...)` runs a meta-batch of B tasks [B, rows, ...] with per-task weights [B, ...] as a Python loop over the
tasks (unrolled: the meta-batch is static), or as one call on the tasks folded into the batch where the weights
are shared and no layer mixes examples. Both compile under `tf.function(jit_compile=True)`; `tf.vectorized_map`
does not (per-task conv filters make pfor fall back to a while loop of dynamic size), see docs/NETWORKS.md.

Variable roles (what the learners read): `norm_keys`, the trainable variables of normalisation layers (MAML's
batch-norm offsets are meta-learned but not adapted, and so are these); `head_keys`, those of the last layer that
owns trainable variables (ANIL's head); `batch_dependent`, whether a layer mixes the examples of a batch in
training mode (batch norm), which decides whether tasks may be folded into one batch.
"""
import random
import re

import numpy as np
import tensorflow as tf
import keras

NORM_LAYERS = (keras.layers.BatchNormalization, keras.layers.LayerNormalization, keras.layers.GroupNormalization)
BATCH_DEPENDENT = (keras.layers.BatchNormalization,)


def _layers(model):
    """Every layer of `model`, nested models' included (Keras's own walk)."""
    return list(model._flatten_layers(include_self=False, recursive=True))


def build_model(function, input_shape, num_outputs, seed=-1):
    """`function(input_shape, num_outputs)` -> a built keras.Model, with Keras's initialisers seeded by `seed` (>= 0)
    as keras.utils.set_random_seed does; Python's and NumPy's global random states are left as they were (the task
    stream must not move). Raises ValueError (one line) if the function fails or returns no keras.Model."""
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        if seed >= 0:
            keras.utils.set_random_seed(seed)
        model = function(tuple(input_shape), num_outputs)
    except Exception as e:   # the user's code: any exception becomes one line
        raise ValueError(f'{getattr(function, "__name__", function)}({tuple(input_shape)}, {num_outputs}) failed: '
                         f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}') from None
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    if not isinstance(model, keras.Model):
        raise ValueError(f'{getattr(function, "__name__", function)} returned {type(model).__name__}, not a '
                         f'keras.Model')
    return model


class KerasNetwork:
    """A built keras.Model as `net(weights, state, x, training) -> (outputs, new state)`.

    Attributes: `model`; `input_shape` (one example's); `keys` (trainable variables' names, in
    `model.trainable_variables` order) and `state_keys` (non-trainable, in `model.non_trainable_variables` order);
    `norm_keys`, `head_keys`, `batch_dependent` (see the module docstring); `output_size`, the width of the
    flattened output of one example.
    """

    def __init__(self, model, input_shape):
        self.model, self.input_shape = model, tuple(int(d) for d in input_shape)
        if not model.built or not model.variables:
            model(np.zeros((2,) + self.input_shape, np.float32), training=False)
        names = self._names(model.variables)
        self.keys = [names[id(v)] for v in model.trainable_variables]
        self.state_keys = [names[id(v)] for v in model.non_trainable_variables]
        ids = {id(v): k for v, k in zip(model.trainable_variables, self.keys)}
        self.norm_keys = [ids[id(v)] for layer in _layers(model) if isinstance(layer, NORM_LAYERS)
                          for v in layer.trainable_variables if id(v) in ids and v.name in ('beta', 'gamma')]
        self.batch_dependent = any(isinstance(layer, BATCH_DEPENDENT) for layer in _layers(model))
        owner = [v.path.rsplit('/', 1)[0] for v in model.trainable_variables]
        self.head_keys = [k for k, o in zip(self.keys, owner) if o == owner[-1]]
        out = model.compute_output_spec(keras.KerasTensor((2,) + self.input_shape))
        self.output_size = int(np.prod(out.shape[1:]))

    @staticmethod
    def _names(variables):
        """{id(variable): key}: '<i>_<layer>/<variable name>', i numbering the owning layers in the order of
        `variables` and <layer> the layer's name without Keras's '_<n>' suffix (e.g. '03_conv2d/kernel'). Keras
        numbers its auto-named layers over the whole process, so its paths change when a model is built twice;
        these keys do not, which checkpoints need."""
        owners, names = {}, {}
        for v in variables:
            owner = v.path.rsplit('/', 1)[0] if '/' in v.path else ''
            if owner not in owners:
                owners[owner] = f'{len(owners):02d}_' + re.sub(r'_\d+$', '', owner.split('/')[-1] or 'model')
            key = owners[owner] + '/' + v.name
            while key in names.values():
                key += "'"
            names[id(v)] = key
        return names

    # ---------------------------------------------------------------- values
    def initial_weights(self):
        """{key: tensor} of the model's trainable variables now (its initialisation)."""
        return {k: tf.convert_to_tensor(v.value) for k, v in zip(self.keys, self.model.trainable_variables)}

    def initial_state(self):
        """{key: tensor} of the model's non-trainable variables now."""
        return {k: tf.convert_to_tensor(v.value) for k, v in zip(self.state_keys, self.model.non_trainable_variables)}

    def assign_to_model(self, weights, state=None):
        """Writes `weights` (and `state`) {key: value} into the model's own variables, e.g. to save or export the
        meta-learned model with Keras."""
        for k, v in zip(self.keys, self.model.trainable_variables):
            v.assign(weights[k])
        for k, v in zip(self.state_keys, self.model.non_trainable_variables):
            if state is not None and k in state:
                v.assign(state[k])

    # ---------------------------------------------------------------- the function
    def __call__(self, weights, state, x, training):
        """(outputs [n, output_size], new state {key: tensor}) of one batch `x` [n, *input_shape].

        `weights` {key: tensor} must hold every key of `keys`; `state` every key of `state_keys`. Batch norm uses
        the batch's statistics when `training` (and returns its moving averages moved), else the moving averages
        in `state`. Outputs of rank > 2 are flattened."""
        missing = [k for k in self.keys if k not in weights]
        if missing:
            raise KeyError(f'no value for the trainable variables {missing}')
        out, new = self.model.stateless_call([weights[k] for k in self.keys], [state[k] for k in self.state_keys],
                                             x, training=bool(training))
        out = tf.convert_to_tensor(out)
        if len(out.shape) != 2:
            out = tf.reshape(out, [-1, self.output_size])
        return out, dict(zip(self.state_keys, new))

    def tasks(self, weights, state, x, training, shared=False, common=None):
        """(outputs [B, rows, output_size], new state) of B tasks `x` [B, rows, *input_shape].

        `weights`: {key: [B, ...]} per-task values, or with `shared` one value per key (no task axis) for all
        tasks. Per-task weights run as a Python loop over the tasks (unrolled, the meta-batch being static; the
        state threads through the calls in task order, as B calls of the model would leave it). Shared weights
        run as one call on the B * rows examples folded into one batch where `can_fold(training)`, else as the
        loop (batch norm's statistics stay per task). `common` {key: value}: further weights shared by all tasks
        (no task axis), e.g. MAML's norm parameters next to per-task fast weights."""
        common = common or {}
        b, rows = int(x.shape[0]), int(x.shape[1])
        if shared and self.can_fold(training):
            out, new = self({**weights, **common}, state, tf.reshape(x, [b * rows] + list(x.shape[2:])), training)
            return tf.reshape(out, [b, rows, self.output_size]), new
        per_task = None if shared else {k: tf.unstack(v, num=b) for k, v in weights.items()}
        xs = tf.unstack(x, num=b)
        outs = []
        for t in range(b):
            task_weights = {**common, **(weights if shared else {k: v[t] for k, v in per_task.items()})}
            out, state = self(task_weights, state, xs[t], training)
            outs.append(out)
        return tf.stack(outs), state

    def can_fold(self, training):
        """True when B tasks with shared weights may run as one batch: no layer mixes the examples of a batch in
        this mode (batch norm in training mode does)."""
        return not (training and self.batch_dependent)
