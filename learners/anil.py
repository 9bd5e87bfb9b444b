"""ANIL (Raghu, Raghu, Bengio, Vinyals, ICLR 2020): MAML whose inner loop adapts only the output layer.

The fast weights are the head's (`w5, b5` of the conv net, the last `w, b` of the fc net); the body is read
from the meta-parameters in every forward pass, so the inner gradients reach the head only, while the
meta-gradient reaches body and head (second order through the head's adaptation). Everything else (network,
losses, outer Adam, evaluation) is MAML's; the MAML++ switches apply (LSLR: rates for the head only).
"""
import tensorflow as tf

from learners import mamlpp


class ANIL(mamlpp.MAMLPlusPlus):
    """MAMLPlusPlus adapting `head_keys()` only."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.network = self.forward                 # MAML's forward_conv / forward_fc on all weights
        self.forward = self.forward_anil

    def head_keys(self):
        """The output layer's weight keys: ['w5', 'b5'] (conv) or ['w<n+1>', 'b<n+1>'] (fc, n hidden layers)."""
        if self.classification and self.config.conv:
            return ['w5', 'b5']
        n = len(self.dim_hidden) + 1
        return ['w' + str(n), 'b' + str(n)]

    def adapted_keys(self):
        return self.head_keys()

    def _task_weights(self, batch):
        """The head as `batch` per-task copies: the fast weights of the inner loop."""
        return {k: tf.broadcast_to(self.weights[k], [batch] + self.weights[k].shape.as_list())
                for k in self.head_keys()}

    def forward_anil(self, inp, weights):
        """The network on `inp` [B, rows, dim_input] with per-task head `weights` and the meta-learned body."""
        batch = int(inp.shape[0])
        body = {k: tf.broadcast_to(v, [batch] + v.shape.as_list()) for k, v in self.weights.items()
                if k not in weights}
        return self.network(inp, {**body, **weights})
