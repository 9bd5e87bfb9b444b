"""Meta-SGD (Li, Zhou, Chen, Li 2017, arXiv 1707.09835): MAML whose inner step size is learned per element.

The inner update is theta' = theta - alpha * grad (elementwise), alpha a meta-parameter of the same shape as
each weight, initialised to `--update_lr` (as learn2learn's MetaSGD: a constant) and learned by the outer Adam
with the weights. With every alpha at update_lr it is MAML to the last bit. The paper takes one inner step;
more work as in MAML, with one alpha for all steps, or one per step with `--lslr`. The MAML++ switches apply.
"""
import tensorflow as tf

from learners import mamlpp


class MetaSGD(mamlpp.MAMLPlusPlus):
    """MAMLPlusPlus whose `inner_lrs` are Meta-SGD's alphas ('alpha/<key>' in `meta_variables`)."""
    inner_lr_prefix = 'alpha'

    def construct_inner_lrs(self):
        """{key: alpha} for every adapted weight, shaped as the weight ([N, *shape] with --lslr), all update_lr."""
        steps = [self.num_steps] if self.config.lslr else []
        return {k: tf.Variable(tf.fill(steps + self.weights[k].shape.as_list(),
                                       tf.constant(self.update_lr, self.dtype)), name='alpha/' + k)
                for k in self.adapted_keys()}
