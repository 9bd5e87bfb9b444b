"""TF1 `tf.train.AdamOptimizer`, exactly: epsilon 1e-8 in the "epsilon-hat" form, beta powers as variables.

Written by hand (about 30 lines) rather than taken from Keras: Keras defaults to epsilon 1e-7 and
keeps its step count differently, while this one matches the original's update to the last bit
of its formula, compiles under XLA, and its slots carry TF1's checkpoint names (`<var>/Adam`,
`<var>/Adam_1`, `beta1_power`, `beta2_power`).
"""
import tensorflow as tf


class Adam(tf.Module):
    """Adam over a dict of variables; `apply_gradients(grads)` takes a dict with the same keys."""

    def __init__(self, variables, learning_rate, beta1=0.9, beta2=0.999, epsilon=1e-8, name='Adam'):
        super().__init__(name=name)
        self.learning_rate, self.beta1, self.beta2, self.epsilon = learning_rate, beta1, beta2, epsilon
        self.variables_ = dict(variables)
        dtype = next(iter(self.variables_.values())).dtype
        self.m = {k: tf.Variable(tf.zeros_like(v), trainable=False, name=f'{k}/{name}')
                  for k, v in self.variables_.items()}
        self.v = {k: tf.Variable(tf.zeros_like(v), trainable=False, name=f'{k}/{name}_1')
                  for k, v in self.variables_.items()}
        self.beta1_power = tf.Variable(tf.constant(beta1, dtype), trainable=False, name='beta1_power')
        self.beta2_power = tf.Variable(tf.constant(beta2, dtype), trainable=False, name='beta2_power')

    def apply_gradients(self, grads):
        """var -= lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps), then the beta powers advance (TF1 ApplyAdam)."""
        dtype = self.beta1_power.dtype
        one = tf.constant(1.0, dtype)
        alpha = self.learning_rate * tf.sqrt(one - self.beta2_power) / (one - self.beta1_power)
        for k, var in self.variables_.items():
            g = tf.convert_to_tensor(grads[k])
            m = self.m[k].assign_add((g - self.m[k]) * (one - self.beta1))
            v = self.v[k].assign_add((tf.square(g) - self.v[k]) * (one - self.beta2))
            var.assign_sub((m * alpha) / (tf.sqrt(v) + self.epsilon))
        self.beta1_power.assign(self.beta1_power * self.beta1)
        self.beta2_power.assign(self.beta2_power * self.beta2)
