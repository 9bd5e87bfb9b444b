"""A small CNN of one's own, for every learner: `--network=examples.cnn:cnn` (run from the repository root).

    python main.py --datasource=folder --data_dir=DIR --img_size=28 --network=examples.cnn:cnn --num_classes=5 \\
        --update_batch_size=1 --update_lr=0.4 --meta_batch_size=32 --logdir=logs/mine
"""
import keras


def cnn(input_shape, num_outputs):
    """Three 3x3 convolutions with 32 filters, stride 2, batch norm and ReLU, then global average pooling; a dense
    layer of `num_outputs` (None: the metric learners' 32-wide embedding)."""
    inputs = keras.Input(input_shape)
    x = inputs
    for _ in range(3):
        x = keras.layers.Conv2D(32, 3, strides=2, padding='same')(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if num_outputs is not None:
        x = keras.layers.Dense(num_outputs)(x)
    return keras.Model(inputs, x)
