"""The paper's networks written as Keras models (`--network=conv4`, `--network=fc`).

They are the functional path's networks (maml.MAML.forward_conv / forward_fc, protonet.embed) layer for layer, with
the layers of networks/layers.py where a stock Keras layer's second derivative is not exact, so that a Keras model
run through networks.keras_net gives the functional path's numbers from the same weights (tests/test_networks.py).
The initial weights are Keras's (Glorot-uniform kernels, zero biases), not the original's draws.
"""
import keras

from networks import layers

BATCH_NORM_EPSILON = 1e-3     # MAML's (tf.contrib.layers.batch_norm)
TORCH_BN_EPSILON = 1e-5       # the metric learners' (torch.nn.BatchNorm2d)
LAYER_NORM_EPSILON = 1e-12


def _norm(norm, epsilon=BATCH_NORM_EPSILON, scale=False):
    """MAML's normalisation as a layer: batch norm with offset beta only (scale=False: the original has no
    gamma), layer norm with gamma and beta, or none."""
    if norm == 'batch_norm':
        return layers.BatchNormalization(epsilon=epsilon, scale=scale)
    if norm == 'layer_norm':
        return keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON)
    return None


def conv4(input_shape, num_outputs, filters=64, norm='batch_norm', max_pool=False, flatten=False):
    """MAML's Conv-4: 4 x [3x3 'SAME' conv + bias -> norm -> ReLU], stride 2 or (max_pool) stride 1 then a 2x2
    max-pool; then the spatial mean (Omniglot) or the flattened map (`flatten`: MiniImagenet) and a dense layer of
    `num_outputs`. `num_outputs=None`: the embedding of the metric learners and baselines instead (protonet.embed:
    batch norm with gamma and beta, eps 1e-5, max-pool in every block, flattened, no dense layer)."""
    embedding = num_outputs is None
    inp = keras.Input(input_shape)
    x = inp
    for _ in range(4):
        x = keras.layers.Conv2D(filters, 3, strides=1 if (max_pool or embedding) else 2, padding='same')(x)
        n = _norm(norm, TORCH_BN_EPSILON, True) if embedding else _norm(norm)
        if n is not None:
            x = n(x)
        x = keras.layers.ReLU()(x)
        if max_pool or embedding:
            x = layers.MaxPool2x2()(x)
    if embedding or flatten:
        x = keras.layers.Flatten()(x)
    else:
        x = keras.layers.GlobalAveragePooling2D()(x)
    if not embedding:
        x = keras.layers.Dense(num_outputs)(x)
    return keras.Model(inp, x, name='conv4')


def fc(input_shape, num_outputs, hidden=(256, 128, 64, 64), norm='batch_norm'):
    """MAML's fully connected net: flattened input -> [dense -> norm -> ReLU] per hidden width -> dense of
    `num_outputs` (None: no output layer, the last hidden layer is the embedding)."""
    inp = keras.Input(input_shape)
    x = keras.layers.Flatten()(inp) if len(input_shape) > 1 else inp
    for width in hidden:
        x = keras.layers.Dense(width)(x)
        n = _norm(norm)
        if n is not None:
            x = n(x)
        x = keras.layers.ReLU()(x)
    if num_outputs is not None:
        x = keras.layers.Dense(num_outputs)(x)
    return keras.Model(inp, x, name='fc')
