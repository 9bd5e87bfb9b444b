"""Your own regression task family and your own loop, through the Python API (api.py): MAML on lines y = a x + b,
a, b ~ U(-2, 2), 5-shot, with a small Keras MLP. Run from the repository root: python examples/regression.py

The same family through main.py: `--datasource=examples.regression:lines` (docs/DATA.md, "Your own data").
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def lines(rng, batch_size, num_samples):
    """`batch_size` tasks of `num_samples` points (x [B, S, 1], y [B, S, 1]) on lines y = a x + b."""
    a, b = rng.uniform(-2, 2, [2, batch_size, 1, 1])
    x = rng.uniform(-5, 5, [batch_size, num_samples, 1])
    return x, a * x + b


def mlp(input_shape, num_outputs):
    import keras
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(40, activation='relu')(inputs)
    x = keras.layers.Dense(40, activation='relu')(x)
    return keras.Model(inputs, keras.layers.Dense(num_outputs)(x))


def main(iterations=2000, shots=5, seed=0):
    """Meta-trains; returns the mean squared error on 100 new tasks before and after adaptation."""
    import api
    rng = np.random.RandomState(seed)
    learner = api.MetaLearner(mlp, input_shape=(1,), regression=True, num_outputs=1, update_lr=0.01, norm='None',
                              meta_batch_size=25, seed=seed)
    for i in range(iterations):
        x, y = lines(rng, 25, 2 * shots)
        loss = learner.meta_train_step(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])
        if i % 500 == 0:
            print(f'iteration {i}: query mse before the update {loss:.3f}')
    errors = []
    for _ in range(100):
        x, y = lines(rng, 1, 2 * shots)
        prediction = learner.adapt_and_predict(x[0, :shots], y[0, :shots], x[0, shots:])
        errors.append(np.mean((prediction - y[0, shots:]) ** 2))
    print(f'mean squared error on 100 new lines after adaptation: {np.mean(errors):.3f}')
    return float(np.mean(errors))


if __name__ == '__main__':
    main()
