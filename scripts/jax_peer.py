"""MAML's meta-train step written the way the JAX community writes it: a peer for scripts/benchmark.py.

Not part of the port (JAX is not a dependency): `import jax_peer` works without JAX; `available()` says
whether the peer can run. The computation is the port's, so that timing it means something:

* the same network on the same weights (`params_from(model)` copies the port's meta-variables): the
  sinusoid's 1-40-40-1 ReLU net, or the 4-block conv net (3x3 'SAME' convolutions as
  `lax.conv_general_dilated`, stride 2 without max-pool / stride 1 and a 2x2 `reduce_window` max-pool with it,
  batch norm over the task's rows and pixels with offset `beta`, no scale, eps 1e-3, ReLU);
* the same losses: per task MSE (mean over points), or softmax cross-entropy per row / K summed over the rows;
  the meta-objective is the sum of the tasks' query losses after `num_updates` inner steps / B;
* inner steps `w - update_lr * grad` on the weights only (the batch-norm offsets are meta-learned, not
  adapted), `jax.grad` nested in the meta-gradient (second order) unless `stop_grad` stops it;
* TF1's Adam (epsilon-hat form, beta powers as state), by hand, and the MiniImagenet clip at 10.

One `jax.jit` over `jax.vmap` of the per-task function (`make_step`), or a `lax.scan` over N stacked
meta-batches inside one `jax.jit` (`make_scan`: the analogue of the port's `--steps_per_execution`).
"""
import functools


def available():
    """True when JAX is installed (the benchmark's JAX rows say 'not installed' otherwise); imports nothing."""
    import importlib.util
    return importlib.util.find_spec('jax') is not None


class Spec:
    """What the peer needs of a benchmark setting (its Config fields) and of the port's model."""

    def __init__(self, flags, dim_input, dim_output, conv='lax'):
        self.conv = conv   # 'lax': lax.conv_general_dilated (vmapped: a grouped convolution); 'im2col': 9 slices + dot
        self.sinusoid = flags['datasource'] == 'sinusoid'
        self.miniimagenet = flags['datasource'] == 'miniimagenet'
        self.num_updates = flags['num_updates']
        self.update_lr = flags['update_lr']
        self.meta_lr = flags.get('meta_lr', 0.001)
        self.stop_grad = flags.get('stop_grad', False)
        self.batch_norm = flags.get('norm') == 'batch_norm'
        self.max_pool = flags.get('max_pool', False)
        self.k = flags['update_batch_size']
        self.channels = 3 if self.miniimagenet else 1
        self.img = int(round((dim_input / self.channels) ** 0.5))
        self.dim_output = dim_output


def params_from(model):
    """({weight key: float32 array}, {'0/beta': array, ...}): the port's meta-variables as NumPy arrays."""
    return ({k: v.numpy() for k, v in model.weights.items()},
            {k: v.numpy() for k, v in model.norm_weights.items()})


# ------------------------------------------------------------------------------------ the network
def _forward(spec, weights, norms, x):
    """Predictions / logits [rows, dim_output] of ONE task's inputs [rows, dim_input]."""
    import jax
    import jax.numpy as jnp
    if spec.sinusoid:
        h = jax.nn.relu(x @ weights['w1'] + weights['b1'])
        h = jax.nn.relu(h @ weights['w2'] + weights['b2'])
        return h @ weights['w3'] + weights['b3']
    h = x.reshape(x.shape[0], spec.img, spec.img, spec.channels)
    stride = 1 if spec.max_pool else 2
    conv = _im2col_conv if spec.conv == 'im2col' else functools.partial(
        jax.lax.conv_general_dilated, padding='SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    for i in range(4):
        h = conv(h, weights[f'conv{i + 1}'], (stride, stride)) + weights[f'b{i + 1}']
        if spec.batch_norm:
            mean = jnp.mean(h, (0, 1, 2))
            var = jnp.mean(jnp.square(h - mean), (0, 1, 2))
            h = (h - mean) * jax.lax.rsqrt(var + 1e-3) + norms[f'{i}/beta']
        h = jax.nn.relu(h)
        if spec.max_pool:
            h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), 'VALID')
    h = h.reshape(h.shape[0], -1) if spec.miniimagenet else jnp.mean(h, (1, 2))
    return h @ weights['w5'] + weights['b5']


def _im2col_conv(x, kernel, strides):
    """3x3 'SAME' convolution [n, H, W, C] x [3, 3, C, F] as nine strided slices and one product (the layout
    the issue's JAX peer used: under vmap a batched dot instead of a grouped convolution)."""
    import jax.numpy as jnp
    n, h, w, c = x.shape
    s = strides[0]
    oh, ow = -(-h // s), -(-w // s)
    ph, pw = max((oh - 1) * s + 3 - h, 0), max((ow - 1) * s + 3 - w, 0)
    x = jnp.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    taps = [x[:, dy:dy + (oh - 1) * s + 1:s, dx:dx + (ow - 1) * s + 1:s, :] for dy in range(3) for dx in range(3)]
    patches = jnp.stack(taps, 3).reshape(n * oh * ow, 9 * c)
    return (patches @ kernel.reshape(9 * c, -1)).reshape(n, oh, ow, -1)


def _task_loss(spec, weights, norms, x, y):
    """One task's loss (a scalar): MSE over its points, or the sum over rows of cross-entropy / K."""
    import jax
    import jax.numpy as jnp
    pred = _forward(spec, weights, norms, x)
    if spec.sinusoid:
        return jnp.mean(jnp.square(pred - y))
    return jnp.sum(-jnp.sum(y * jax.nn.log_softmax(pred), -1)) / spec.k


def _query_loss(spec, weights, norms, xa, ya, xb, yb):
    """One task: `num_updates` inner steps on (xa, ya) from `weights`, then the loss on (xb, yb)."""
    import jax
    fast = weights
    for _ in range(spec.num_updates):
        grads = jax.grad(_task_loss, argnums=1)(spec, fast, norms, xa, ya)
        if spec.stop_grad:
            grads = jax.lax.stop_gradient(grads)
        fast = jax.tree_util.tree_map(lambda w, g: w - spec.update_lr * g, fast, grads)
    return _task_loss(spec, fast, norms, xb, yb)


def meta_loss(spec, params, inputa, labela, inputb, labelb):
    """The meta-objective: sum over the vmapped tasks of their query losses / B. `params` = (weights, norms)."""
    import jax
    import jax.numpy as jnp
    weights, norms = params
    losses = jax.vmap(functools.partial(_query_loss, spec), in_axes=(None, None, 0, 0, 0, 0))(
        weights, norms, inputa, labela, inputb, labelb)
    return jnp.sum(losses) / inputa.shape[0]


def meta_gradients(spec, params, batch):
    """(meta-objective, its gradient with the structure of `params`), compiled: for the correctness check."""
    import jax
    return jax.jit(jax.value_and_grad(functools.partial(meta_loss, spec)))(params, *batch)


# ------------------------------------------------------------------------------------ the step
def adam_init(params):
    """TF1 AdamOptimizer state: (m, v, beta1_power, beta2_power)."""
    import jax
    import jax.numpy as jnp
    def zeros():   # two separate buffers: the jitted step donates (reuses) its state
        return jax.tree_util.tree_map(jnp.zeros_like, params)
    return zeros(), zeros(), jnp.float32(0.9), jnp.float32(0.999)


def _adam(spec, params, state, grads, b1=0.9, b2=0.999, eps=1e-8):
    """TF1 ApplyAdam: m, v moved towards g, g^2; w -= lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps)."""
    import jax
    import jax.numpy as jnp
    m, v, p1, p2 = state
    m = jax.tree_util.tree_map(lambda m, g: m + (g - m) * (1 - b1), m, grads)
    v = jax.tree_util.tree_map(lambda v, g: v + (jnp.square(g) - v) * (1 - b2), v, grads)
    alpha = spec.meta_lr * jnp.sqrt(1 - p2) / (1 - p1)
    params = jax.tree_util.tree_map(lambda w, m, v: w - m * alpha / (jnp.sqrt(v) + eps), params, m, v)
    return params, (m, v, p1 * b1, p2 * b2)


def _train_step(spec, params, state, batch):
    import jax
    import jax.numpy as jnp
    loss, grads = jax.value_and_grad(functools.partial(meta_loss, spec))(params, *batch)
    if spec.miniimagenet:
        grads = jax.tree_util.tree_map(lambda g: jnp.clip(g, -10.0, 10.0), grads)
    params, state = _adam(spec, params, state, grads)
    return params, state, loss


def make_step(spec):
    """step(params, state, inputa, labela, inputb, labelb) -> (params, state, meta-objective): one jitted call
    per meta-iteration (the meta-objective of the weights before the update, as the port's step returns)."""
    import jax
    return jax.jit(lambda params, state, *batch: _train_step(spec, params, state, batch), donate_argnums=(0, 1))


def make_scan(spec):
    """steps(params, state, stacked inputa, labela, inputb, labelb [N, B, ...]) -> (params, state, objectives [N]):
    N meta-iterations in one jitted call, a `lax.scan` over the stacked meta-batches."""
    import jax

    def steps(params, state, *stacks):
        def body(carry, batch):
            params, state, loss = _train_step(spec, *carry, batch)
            return (params, state), loss
        (params, state), losses = jax.lax.scan(body, (params, state), stacks)
        return params, state, losses
    return jax.jit(steps, donate_argnums=(0, 1))


def empty_call(arrays):
    """(a jitted call that does no work on the step's inputs, the inputs on the device): the dispatch cost."""
    import jax
    device = [jax.device_put(a) for a in arrays]
    return jax.jit(lambda *b: b[0][0, 0, 0]), device
