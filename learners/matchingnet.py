"""Matching Networks (Vinyals et al. 2016) without full-context embeddings.

The query's class distribution is attention over the support set: P(y = k | x) = sum_i a(x, x_i) y_ik with
a(x, x_i) = softmax_i cos(f(x), f(x_i)), f the shared Conv-4 embedding (protonet.Conv4Learner, same training
loop, Adam and learning-rate schedule as ProtoNets). The logits handed to the cross-entropy are
log sum_i exp(cos_i) y_ik, whose softmax is exactly that attention-weighted label sum. Vinyals' plain cosine
(no temperature); CloserLookFewShot's re-implementation instead scales relu(cos) by 100 and always uses FCE.
"""
import tensorflow as tf

from learners.protonet import MetricLearner


def cosine_similarities(query, support):
    """cos(q_i, s_j) for every query and support embedding: [B, Q, D], [B, S, D] -> [B, Q, S]
    (tf.math.l2_normalize: x / sqrt(max(|x|^2, 1e-12)), finite at x = 0)."""
    return tf.matmul(tf.math.l2_normalize(query, -1), tf.math.l2_normalize(support, -1), transpose_b=True)


def attention_logits(similarities, labels):
    """log sum_i exp(c_i) y_ik: [B, Q, S] similarities, one-hot [B, S, N] -> [B, Q, N] logits whose softmax is
    sum_i softmax(c)_i y_ik, the attention's class probabilities (every class needs a support example)."""
    shift = tf.stop_gradient(tf.reduce_max(similarities, -1, keepdims=True))
    return shift + tf.math.log(tf.matmul(tf.exp(similarities - shift), labels))


class MatchingNet(MetricLearner):
    """Matching Networks: softmax attention over the cosine similarities to every support example."""

    def __init__(self, dim_input, dim_output, test_num_updates=0, config=None, dtype=tf.float32):
        from config import Config
        config = config or Config()
        if config.fce:
            raise ValueError('--fce=True: full-context embeddings are not implemented yet; drop --fce')
        super().__init__(dim_input, dim_output, test_num_updates, config, dtype)

    def metric(self, support, labela, query):
        return attention_logits(cosine_similarities(query, support), labela)
