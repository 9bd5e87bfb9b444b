"""ResNet-12 (Lee et al., MetaOptNet, CVPR 2019, section 4.1; kjunelee/MetaOptNet models/ResNet12_embedding.py) as a
Keras model, `--network=resnet12`.

Four residual blocks of 64, 160, 320, 640 filters. Block k: 3 x [3x3 conv (pad 1, no bias) -> batch norm], a
LeakyReLU(0.1) after the first two; shortcut 1x1 conv (no bias) -> batch norm; add -> LeakyReLU(0.1) -> 2x2 max-pool
-> regularisation: plain dropout (drop_rate) after blocks 1-2, DropBlock (drop_rate annealed, block size 5, or 2 on
CIFAR-size inputs) after blocks 3-4, as MetaOptNet's code. Initialisation: kaiming_normal(fan_out, leaky_relu) convs,
batch norm gamma 1, beta 0 (eps 1e-5, torch's; moving averages with torch's momentum 0.1, Keras momentum 0.9).
84x84 inputs give 5x5x640 = 16,000 features (MetaOptNet: no global average pooling) or 640 with `avg_pool`
(FEAT's and learn2learn's variant); 12,424,320 trainable parameters without an output layer.
The batch norm and max-pool are networks.layers' (exact second derivatives), so MAML can differentiate through it.
"""
import keras

from networks import layers

FILTERS = (64, 160, 320, 640)
LEAKY = 0.1
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9             # Keras convention: new = 0.9 old + 0.1 batch (torch momentum 0.1)


def _conv(filters, size):
    init = keras.initializers.VarianceScaling(2.0 / (1 + LEAKY ** 2), 'fan_out', 'untruncated_normal')
    return keras.layers.Conv2D(filters, size, padding='same', use_bias=False, kernel_initializer=init)


def _bn():
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM)


def block(x, filters, drop_rate, drop_block, block_size):
    """One residual block: [n, H, W, C] -> [n, H//2, W//2, filters]."""
    out = x
    for i in range(3):
        out = _bn()(_conv(filters, 3)(out))
        if i < 2:
            out = keras.layers.LeakyReLU(LEAKY)(out)
    residual = _bn()(_conv(filters, 1)(x))
    out = keras.layers.LeakyReLU(LEAKY)(keras.layers.Add()([out, residual]))
    out = layers.MaxPool2x2()(out)
    if drop_rate > 0:
        out = layers.DropBlock(drop_rate, block_size if drop_block else 1)(out)
    return out


def resnet12(input_shape, num_outputs=None, avg_pool=False, drop_rate=0.1, dropblock_size=None):
    """ResNet-12 on images `input_shape` (H, W, C): features [n, 5*5*640] on 84x84 (or [n, 640] with `avg_pool`),
    then a dense layer of `num_outputs` unless it is None (the embedding / backbone). `dropblock_size`: None picks
    MetaOptNet's, 5 for ImageNet-size inputs and 2 for CIFAR-size (<= 32 pixels); `drop_rate` 0 turns dropout and
    DropBlock off."""
    if dropblock_size is None:
        dropblock_size = 2 if input_shape[0] <= 32 else 5
    inp = keras.Input(input_shape)
    x = inp
    for i, filters in enumerate(FILTERS):
        x = block(x, filters, drop_rate, i >= 2, dropblock_size)
    x = keras.layers.GlobalAveragePooling2D()(x) if avg_pool else keras.layers.Flatten()(x)
    if num_outputs is not None:
        x = keras.layers.Dense(num_outputs)(x)
    return keras.Model(inp, x, name='resnet12')
