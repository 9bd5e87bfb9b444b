"""Matching Networks (Vinyals et al. 2016) without full-context embeddings.

The query's class distribution is attention over the support set: P(y = k | x) = sum_i a(x, x_i) y_ik with
a(x, x_i) = softmax_i c(f(x), f(x_i)), f the shared Conv-4 embedding (protonet.Conv4Learner, same training
loop, Adam and learning-rate schedule as ProtoNets). The logits handed to the cross-entropy are
log sum_i exp(c_i) y_ik, whose softmax is exactly that attention-weighted label sum.

The similarity c (--distance):
* `l2` (the default): c = -||f(x) - f(x_i)||^2, oscarknagg/few-shot's `matching_nets.py --distance l2`, which
  reaches the paper's Omniglot numbers (its README: 98.3 / 99.8 / 92.8 % against 92.0 / 93.2 / 75.6 % with
  cosine).
* `cosine`: c = s cos(f(x), f(x_i)), s = --cosine_scale (1: Vinyals' plain cosine, this learner's only
  similarity before 2026-12-07: after the embedding's final ReLU the cosine lies in [0, 1], the attention stays
  near uniform and Omniglot 5-way 1-shot ends near 83 %; CloserLookFewShot scales it by 100 "to strengthen
  highest probability after softmax"), trained with the embedding under --learn_cosine_scale.
--final_relu=False leaves out the ReLU of the embedding's last block (features of either sign).
"""
import tensorflow as tf

from infra import checks
from learners.protonet import MetricLearner, squared_distances

SCALE = 'cosine_scale'      # the learned scale's name in `weights` (and checkpoints)


def cosine_similarities(query, support):
    """cos(q_i, s_j) for every query and support embedding: [B, Q, D], [B, S, D] -> [B, Q, S]
    (tf.math.l2_normalize: x / sqrt(max(|x|^2, 1e-12)), finite at x = 0)."""
    return tf.matmul(tf.math.l2_normalize(query, -1), tf.math.l2_normalize(support, -1), transpose_b=True)


def similarities(query, support, distance, scale=1.0):
    """The attention's similarities c(q_i, s_j): [B, Q, D], [B, S, D] -> [B, Q, S]; distance 'l2':
    -||q_i - s_j||^2; 'cosine': scale * cos(q_i, s_j) (`scale` a float or a scalar tensor)."""
    if distance == 'l2':
        return -squared_distances(query, support)
    return scale * cosine_similarities(query, support)


def attention_logits(similarities, labels):
    """log sum_i exp(c_i) y_ik: [B, Q, S] similarities, one-hot [B, S, N] -> [B, Q, N] logits whose softmax is
    sum_i softmax(c)_i y_ik, the attention's class probabilities (every class needs a support example)."""
    shift = tf.stop_gradient(tf.reduce_max(similarities, -1, keepdims=True))
    return shift + tf.math.log(tf.matmul(tf.exp(similarities - shift), labels))


def check_settings(config):
    """Raises ValueError (one line, how to fix) for --distance / --cosine_scale / --learn_cosine_scale
    values that cannot be meant (infra.checks.matchingnet_error, which main.py reports before building)."""
    error = checks.matchingnet_error(config)
    if error:
        raise ValueError(error)


class MatchingNet(MetricLearner):
    """Matching Networks: softmax attention over the similarities (--distance) to every support example."""

    def __init__(self, dim_input, dim_output, test_num_updates=0, config=None, dtype=tf.float32):
        from config import Config
        config = config or Config()
        if config.fce:
            raise ValueError('--fce=True: full-context embeddings are not implemented yet; drop --fce')
        check_settings(config)
        self.final_relu = config.final_relu
        super().__init__(dim_input, dim_output, test_num_updates, config, dtype)

    def metric_weights(self):
        """{'cosine_scale': --cosine_scale} with --learn_cosine_scale (a scalar trained by Adam), else {}."""
        return {SCALE: tf.constant(self.config.cosine_scale)} if self.config.learn_cosine_scale else {}

    def metric(self, support, labela, query):
        scale = self.weights[SCALE] if SCALE in self.weights else self.config.cosine_scale
        return attention_logits(similarities(query, support, self.config.distance, scale), labela)
