#!/usr/bin/env python3
"""Speed of one meta-train step (meta-gradient + TF1 Adam update) against the original TF1 code.

    python scripts/benchmark.py [SETTING ...] [--modes eager function xla reference reference_xla tf1]
        [--repeats 20] [--warmup 3] [--iters 1] [--device cpu|gpu] [--task-groups N] [--json FILE] [--markdown FILE]
        [--precision float32 bfloat16 float16]     # the port's modes once per precision (main.py --precision)

SETTING is any of `a a_fo b c c_fo d` (default: all), the settings of issue 5 whose TF1 times are
in ../shared/golden/tf1/timings.json (`tiny`: a small conv net for smoke tests, no TF1 figure).
Modes (default: eager function xla xla_loop tf1):
  eager          `MAML._metatrain_step` (meta-gradient, clip, Adam) run op by op, no tf.function
  function       `metatrain_step` as tf.function without XLA
  xla            `metatrain_step` with jit_compile (`config.xla`, the default path)
  xla_loop       `metatrain_steps`: `--steps-per-execution` XLA steps in one compiled call (loop.py, main.py
                 --steps_per_execution), timed per meta-iteration
  reference(_xla) the per-task tf.map_fn path (`batched=False`), without / with XLA
  keras(_xla)    the setting's Conv-4 as a Keras model run through stateless_call (main.py --network=conv4,
                 networks/; Keras's initial weights), without / with XLA
  tf1            the original's graph rebuilt in tf.compat.v1 (map_fn over tasks, tf.gradients,
                 conv2d; `tf1_style_step`), timed here under the same load as the port
  jax            the peer: the same step written as the JAX community writes it (scripts/jax_peer.py: one
                 jax.jit over jax.vmap of the tasks, nested jax.grad, TF1's Adam by hand), one call per step,
                 started from the port's initial weights; its meta-gradient is first checked against the port's
                 (XLA, float32) on the same meta-batch (`jax_grad_rel_err`; a row whose check fails is an error)
  jax_scan       the same, `--steps-per-execution` steps in one jitted lax.scan (the analogue of xla_loop)
  jax_im2col     `jax` with the convolutions as im2col (nine slices and a dot; vmapped, a batched dot) instead of
                 lax.conv_general_dilated (vmapped, a grouped convolution: slow on XLA's CPU backend)
JAX is not a dependency of the port: without it the jax rows say "not installed" and the run goes on.

For every setting and mode: the first call (trace + compile + one step), then `--warmup` untimed
steps and `--repeats` timed ones (each `--iters` steps, result fetched to the host): the median
s/iteration with its quartiles and min/max, the process CPU time per iteration, the peak resident
memory of the process (or the GPU's peak allocation), the TF1 figure, the ratio TF1 / ours and
whether the issue's goal (3x; 5x for d) is met, and the ratio to the `tf1` mode of the same run. For the
compiled modes also what a call costs apart from its work, per meta-iteration: an empty compiled call on the
step's inputs (dispatch; divided by the iterations a call runs) and the host-to-device copy of one meta-batch,
and their share of the step.
FLOPs of one meta-iteration are counted once per setting from the optimized XLA HLO of the batched
step (every `dot` / `convolution`: 2 x multiply-adds; elementwise work not counted) and divided by
the time, as % of the CPU's fp32 FMA peak (cores x FMA units x SIMD lanes x 2 x clock; `cpu_peak`).
On a CPU it also times a 2048x2048 matmul (`matmul_ceiling`) and prints the GFLOP/s each setting's
goal needs against that rate and the peak: what the machine would have to deliver.

Inputs are random, of the right shapes (labels one-hot in blocks of N rows, as the original's
batches); no dataset is read. By default each (setting, mode) runs in its own subprocess
(`--no-isolate` to run in-process; `tf1` always gets its own), so memory high-water marks and
thread pools do not leak. `--code DIR` imports maml.py / utils.py from DIR first (to time a scratch
variant). `--json -` / `--markdown -` write to stdout. The whole default run takes about an hour on
2 cores (eager MiniImagenet alone several minutes); pick settings and modes for quicker looks.
"""
import argparse
import collections
import datetime
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (label, Config fields, dim_input, dim_output, rows of a, rows of b per task, TF1 s/iter, goal factor)
Setting = collections.namedtuple('Setting', 'label flags dim_input dim_output rows_a rows_b tf1_s goal')
_OMNI = dict(datasource='omniglot', update_batch_size=1, norm='batch_norm', num_filters=64, max_pool=False)
_MINI = dict(datasource='miniimagenet', num_classes=5, update_batch_size=1, meta_batch_size=4, num_updates=5,
             update_lr=0.01, norm='batch_norm', num_filters=32, max_pool=True)
# TF1 medians (s/iteration) from ../shared/golden/tf1/timings.json, graph 'main' (as main.py trains).
SETTINGS = collections.OrderedDict([
    ('a', Setting('(a) Omniglot 5-way 1-shot, B=32, 1 step, lr 0.4, 64 filters, BN',
                  dict(_OMNI, num_classes=5, meta_batch_size=32, num_updates=1, update_lr=0.4),
                  784, 5, 5, 5, 0.309, 3)),
    ('a_fo', Setting("(a') as (a), stop_grad (first order)",
                     dict(_OMNI, num_classes=5, meta_batch_size=32, num_updates=1, update_lr=0.4, stop_grad=True),
                     784, 5, 5, 5, 0.132, 3)),
    ('b', Setting('(b) Omniglot 20-way 1-shot, B=16, 5 steps, lr 0.1',
                  dict(_OMNI, num_classes=20, meta_batch_size=16, num_updates=5, update_lr=0.1),
                  784, 20, 20, 20, 1.22, 3)),
    ('c', Setting('(c) MiniImagenet 5-way 1-shot, B=4, 5 steps, 32 filters, max-pool, 15 query/class',
                  dict(_MINI), 21168, 5, 5, 75, 2.03, 3)),
    ('c_fo', Setting("(c') as (c), stop_grad (first order)", dict(_MINI, stop_grad=True),
                     21168, 5, 5, 75, 1.38, 3)),
    ('d', Setting('(d) sinusoid K=10, B=25, 1 step, norm None',
                  dict(datasource='sinusoid', update_batch_size=10, meta_batch_size=25, num_updates=1,
                       update_lr=0.01, norm='None'), 1, 1, 10, 10, 0.0167, 5)),
    ('tiny', Setting('tiny: Omniglot 5-way 1-shot, B=2, 1 step, 8 filters (smoke test; no TF1 figure)',
                     dict(_OMNI, num_classes=5, meta_batch_size=2, num_updates=1, update_lr=0.4, num_filters=8),
                     784, 5, 5, 5, None, 3)),
])
DEFAULT_SETTINGS = ('a', 'a_fo', 'b', 'c', 'c_fo', 'd')
MODES = ('eager', 'function', 'xla', 'xla_loop', 'reference', 'reference_xla', 'tf1', 'jax', 'jax_scan',
         'jax_im2col', 'keras', 'keras_xla')
JAX_MODES = ('jax', 'jax_scan', 'jax_im2col')
FLOAT32_MODES = ('tf1',) + JAX_MODES          # the peers: float32 only (--precision is the port's)
PRECISIONS = ('float32', 'bfloat16', 'float16')
JAX_GRAD_RTOL = 1e-4   # the JAX step's meta-gradient vs the port's (float32 rounding only: ~1e-7..1e-5 measured)
# Conv nets: the check runs on the first tasks of the meta-batch only. On a's full 32 tasks two correct float32
# implementations differ by up to 1e-2 through ReLU ties (a unit within rounding of 0 flips; docs/SPEED.md, issue
# 12): measured 7e-3..1.6e-2 on conv1-conv3 with conv4 / w5 at 2e-6, every 1- or 4-task subset at <= 9e-6.
JAX_CHECK_CONV_TASKS = 4
DEFAULT_MODES = ('eager', 'function', 'xla', 'xla_loop', 'tf1')


# ------------------------------------------------------------------------------------ machine
# The vector extensions that decide which kernels XLA and oneDNN emit, as /proc/cpuinfo names them: (label, flags).
AVX512_FLAGS = ('avx512f', 'avx512dq', 'avx512cd', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx512_bf16',
                'avx512_fp16', 'avx512ifma', 'avx512vbmi', 'avx512_vbmi2', 'avx512_bitalg', 'avx512_vpopcntdq')
AMX_FLAGS = ('amx_tile', 'amx_bf16', 'amx_int8', 'amx_fp16')


def parse_cpuinfo(text):
    """{'model', 'mhz', 'flags'} of the first processor in the text of /proc/cpuinfo: model name (None if absent),
    `cpu MHz` as a float (None if absent) and the set of its `flags` (empty if absent)."""
    info = {'model': None, 'mhz': None, 'flags': set()}
    for line in text.splitlines():
        key, _, value = line.partition(':')
        key, value = key.strip(), value.strip()
        if key == 'model name' and info['model'] is None:
            info['model'] = value
        elif key == 'cpu MHz' and info['mhz'] is None:
            try:
                info['mhz'] = float(value)
            except ValueError:
                pass
        elif key == 'flags' and not info['flags']:
            info['flags'] = set(value.split())
    return info


def cpu_info():
    """{'model', 'cores', 'mhz', 'flags'} from /proc/cpuinfo (what the VM reports); without it (not Linux, or
    unreadable) the model from `platform`, no MHz and no flags."""
    try:
        with open('/proc/cpuinfo') as f:
            info = parse_cpuinfo(f.read())
    except OSError:
        info = {'model': None, 'mhz': None, 'flags': set()}
    info['model'] = info['model'] or platform.processor() or 'unknown'
    info['cores'] = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    return info


def vector_extensions(flags):
    """One line naming the CPU's vector extensions among `flags` (a set of /proc/cpuinfo flag names), e.g.
    'AVX2, FMA, no AVX-512, no AMX' or 'AVX2, FMA, AVX-512 (f dq cd bw vl vnni bf16), AMX (tile bf16 int8)';
    'vector extensions unknown (no CPU flags)' for an empty set (no /proc/cpuinfo): what tells the tables of
    docs/SPEED.md apart, as XLA and oneDNN pick their kernels by these."""
    if not flags:
        return 'vector extensions unknown (no CPU flags)'
    parts = [name for name, flag in (('AVX', 'avx'), ('AVX2', 'avx2'), ('FMA', 'fma')) if flag in flags] or ['no AVX']
    avx512 = [f[6:].lstrip('_') for f in AVX512_FLAGS if f in flags]
    parts.append(f"AVX-512 ({' '.join(avx512)})" if avx512 else 'no AVX-512')
    amx = [f[4:] for f in AMX_FLAGS if f in flags]
    parts.append(f"AMX ({' '.join(amx)})" if amx else 'no AMX')
    return ', '.join(parts)


def cpu_peak(info, ghz=None, fma_units=2):
    """(peak fp32 GFLOP/s, assumption text): cores x FMA units x fp32 lanes x 2 flops (multiply + add) x GHz.

    Lanes: 16 with AVX-512, 8 with AVX2/FMA, else 4. Two FMA units per core (Xeon Scalable with
    AVX-512 ports 0+5); the clock is the reported `cpu MHz` (nominal; a VM hides turbo). AMX
    (bf16/int8) is not counted: the step runs in float32.
    """
    lanes = 16 if 'avx512f' in info['flags'] else 8 if 'fma' in info['flags'] else 4
    ghz = ghz or (info['mhz'] or 2000.0) / 1000.0
    peak = info['cores'] * fma_units * lanes * 2 * ghz
    return peak, (f"{info['cores']} cores x {fma_units} FMA units x {lanes} fp32 lanes x 2 flops x "
                  f"{ghz:.2f} GHz = {peak:.0f} GFLOP/s")


def machine_info():
    info = cpu_info()
    return {'cpu_model': info['model'], 'cores': info['cores'], 'cpu_mhz': info['mhz'],
            'avx512': 'avx512f' in info['flags'], 'amx': 'amx_tile' in info['flags'],
            'vector_extensions': vector_extensions(info['flags']),
            'python': platform.python_version(), 'platform': platform.platform()}


def matmul_ceiling(n=2048, repeats=10):
    """{'tf', 'xla'}: GFLOP/s of an n x n float32 matmul (median of `repeats`) in plain TensorFlow
    (oneDNN on x86) and under XLA, on all cores: what this machine's dense kernels reach in practice,
    against which the goal's required rate is set (no meta-step runs near the theoretical peak)."""
    import numpy as np
    import tensorflow as tf
    a, b = tf.random.normal([n, n]), tf.random.normal([n, n])
    def product():
        return tf.matmul(a, b)
    rates = {}
    for name, fn in (('tf', product), ('xla', tf.function(product, jit_compile=True, autograph=False))):
        fn().numpy()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn().numpy()
            times.append(time.perf_counter() - t0)
        rates[name] = 2 * n ** 3 / float(np.median(times)) / 1e9
    return rates


def loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# ------------------------------------------------------------------------------------ FLOPs
_INSTR = re.compile(r'^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*[a-z]\w*\[([\d,]*)\]\S*\s+([\w\-]+)\((.*)$')


def _prod(dims):
    n = 1
    for d in dims:
        n *= d
    return n


def _dims(text):
    return [int(x) for x in text.split(',') if x]


def hlo_flops(hlo_text):
    """(flops, {op kind: flops}) of the `dot` and `convolution` instructions of an HLO module's text.

    A dot counts 2 x prod(output) x prod(contracted lhs dims); a convolution 2 x prod(output) x
    prod(kernel) / kernel output features (kernel input features are per group already). Operand
    shapes come from their defining instructions (names are unique in a module). Elementwise work
    is not counted (it runs at memory speed, not FMA speed). Instructions inside fused computations
    are counted once each, which is right without while loops (the batched step).
    """
    shapes, ops = {}, []
    for line in hlo_text.splitlines():
        m = _INSTR.match(line)
        if m:
            name, dims, op, rest = m.group(1), _dims(m.group(2)), m.group(3), m.group(4)
            shapes[name] = dims
            if op in ('dot', 'convolution'):
                ops.append((op, dims, rest))
    total = collections.Counter()
    for op, out, rest in ops:
        operands = re.findall(r'%([\w.\-]+)', rest.split(')', 1)[0])
        if op == 'dot':
            lhs = shapes.get(operands[0])
            c = re.search(r'lhs_contracting_dims=\{([\d,]*)\}', rest)
            if lhs is None or c is None:
                continue
            total['dot'] += 2 * _prod(out) * _prod(lhs[i] for i in _dims(c.group(1)))
        else:
            rhs = shapes.get(operands[1]) if len(operands) > 1 else None
            labels = re.search(r'dim_labels=\w+_(\w+)->', rest)
            if rhs is None:
                continue
            o = labels.group(1).index('o') if labels else len(rhs) - 1
            total['convolution'] += 2 * _prod(out) * _prod(rhs) // max(rhs[o], 1)
    return sum(total.values()), dict(total)


# ------------------------------------------------------------------------------------ one run
def make_batch(setting, seed=0):
    """Random (inputa, labela, inputb, labelb) float32 arrays of the setting's shapes."""
    import numpy as np
    rng = np.random.RandomState(seed)
    f = setting.flags
    b = f['meta_batch_size']
    if f['datasource'] == 'sinusoid':
        amp, phase = rng.uniform(0.1, 5.0, [b, 1, 1]), rng.uniform(0, np.pi, [b, 1, 1])
        xa = rng.uniform(-5, 5, [b, setting.rows_a, 1])
        xb = rng.uniform(-5, 5, [b, setting.rows_b, 1])
        arrays = (xa, amp * np.sin(xa - phase), xb, amp * np.sin(xb - phase))
    else:
        n = setting.dim_output
        def labels(rows):   # rows = N * k: class i % N, as the original's batches
            return np.tile(np.eye(n), (b, rows // n, 1))
        arrays = (rng.uniform(0, 1, [b, setting.rows_a, setting.dim_input]), labels(setting.rows_a),
                  rng.uniform(0, 1, [b, setting.rows_b, setting.dim_input]), labels(setting.rows_b))
    return [a.astype(np.float32) for a in arrays]


def build_model(setting, mode, task_groups=0, precision='float32'):
    """The setting's MAML for `mode` (main.py --precision `precision`); `task_groups` 0 keeps the model's default
    for this device."""
    from config import Config, test_num_updates
    from maml import MAML
    config = Config(**setting.flags, seed=0, xla=mode in ('xla', 'xla_loop', 'reference_xla', 'keras_xla'),
                    precision=precision)
    cls = MAML
    if mode.startswith('keras'):   # the Keras Conv-4 (networks/): --network=conv4
        import networks
        config = config.replace(network='conv4')
        cls = networks.learner_class(config, MAML)
    return cls(setting.dim_input, setting.dim_output, test_num_updates(config), config,
               batched=not mode.startswith('reference'), task_groups=task_groups or None)


def step_function(model, mode, batch, steps_per_execution):
    """(the callable timed, meta-iterations per call): one meta-train step returning its objective, or for
    `xla_loop` `steps_per_execution` of them in one compiled call (loop.py, main.py --steps_per_execution)."""
    if mode == 'eager':
        return model._metatrain_step, 1    # meta_gradients + clip + Adam, op by op
    if mode == 'xla_loop':
        from infra import loop
        stacks = loop.stack_batches([batch] * steps_per_execution, steps_per_execution)
        return (lambda *_: model.metatrain_steps(*stacks, steps_per_execution)[-1]), steps_per_execution
    return model.metatrain_step, 1      # tf.function, jit_compile=config.xla


def dispatch_costs(batch_arrays, xla, repeats):
    """(median s of an empty compiled call on the step's inputs, median s of their host-to-device copy): the
    per-call cost that does not depend on the step's work (dispatch, argument handling, copies)."""
    import numpy as np
    import tensorflow as tf
    tensors = [tf.constant(a) for a in batch_arrays]
    empty = tf.function(lambda *b: b[0][0, 0, 0], jit_compile=xla)
    empty(*tensors).numpy()
    calls, copies = [], []
    for _ in range(max(repeats, 20)):
        t0 = time.perf_counter()
        empty(*tensors).numpy()
        calls.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        [tf.constant(a) for a in batch_arrays][-1].numpy()
        copies.append(time.perf_counter() - t0)
    return float(np.median(calls)), float(np.median(copies))


class _Value:   # what the timing loop reads from a step's result
    def __init__(self, value):
        self.value = value

    def numpy(self):
        import numpy as np
        return np.asarray(self.value)


def grad_rel_err(ours, theirs, batch_norm):
    """max over variables of max|ours - theirs| / max|ours|; the pre-batch-norm biases `b1..b4` are left out
    with batch norm (their exact gradient is 0: the normalisation cancels them, so both sides hold rounding)."""
    import numpy as np
    errs = {k: float(np.abs(np.asarray(theirs[k]) - ours[k]).max() / max(float(np.abs(ours[k]).max()), 1e-30))
            for k in ours if not (batch_norm and k in ('b1', 'b2', 'b3', 'b4'))}
    return max(errs.values()), errs


def jax_step_function(setting, mode, model, arrays, steps_per_execution):
    """(the callable timed, meta-iterations per call, {check fields}) of the JAX peer (scripts/jax_peer.py).

    Starts from the port's initial weights and Adam state; before timing, checks that the peer's meta-gradient
    on `arrays` (conv nets: on their first JAX_CHECK_CONV_TASKS tasks) equals the port's (the XLA step's float32
    one): `jax_grad_rel_err` (max over variables of the relative max-abs difference). The callable keeps the
    weights it updates, as the port's variables do."""
    import numpy as np
    import tensorflow as tf
    import jax
    import jax_peer
    spec = jax_peer.Spec(setting.flags, setting.dim_input, setting.dim_output,
                         conv='im2col' if mode == 'jax_im2col' else 'lax')
    params = jax_peer.params_from(model)
    port = tf.function(lambda *b: model.meta_gradients(*b)[1], jit_compile=True)
    tasks = len(arrays[0]) if spec.sinusoid else min(len(arrays[0]), JAX_CHECK_CONV_TASKS)
    checked = [a[:tasks] for a in arrays]
    ours = {k: v.numpy() for k, v in port(*[tf.constant(a) for a in checked]).items()}
    _, (gw, gn) = jax_peer.meta_gradients(spec, params, checked)
    err, errs = grad_rel_err(ours, {**gw, **gn}, spec.batch_norm)
    check = {'jax_grad_rel_err': err, 'jax_grad_rel_errs': errs, 'jax_check_tasks': tasks,
             'jax_version': jax.__version__}
    if not err <= JAX_GRAD_RTOL:
        raise AssertionError(f'the JAX meta-gradient differs from the port\'s by {err:.3g} relative (> {JAX_GRAD_RTOL})')
    state = [params, jax_peer.adam_init(params)]
    if mode != 'jax_scan':
        fn, per_call, inputs = jax_peer.make_step(spec), 1, [jax.device_put(a) for a in arrays]
    else:
        fn, per_call = jax_peer.make_scan(spec), steps_per_execution
        inputs = [jax.device_put(np.stack([a] * steps_per_execution)) for a in arrays]

    def step(*_):
        state[0], state[1], loss = fn(state[0], state[1], *inputs)
        return _Value(loss[-1] if mode == 'jax_scan' else loss)
    return step, per_call, check


def jax_dispatch_costs(batch_arrays, repeats):
    """As `dispatch_costs`, for JAX: an empty jitted call on the device-resident inputs, `jax.device_put`."""
    import numpy as np
    import jax
    import jax_peer
    empty, inputs = jax_peer.empty_call(batch_arrays)
    np.asarray(empty(*inputs))
    calls, copies = [], []
    for _ in range(max(repeats, 20)):
        t0 = time.perf_counter()
        np.asarray(empty(*inputs))
        calls.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        jax.block_until_ready([jax.device_put(a) for a in batch_arrays])
        copies.append(time.perf_counter() - t0)
    return float(np.median(calls)), float(np.median(copies))


def tf1_style_step(setting, seed=0):
    """A callable running one meta-train step of the original's graph, rebuilt here in tf.compat.v1.

    Mirrors cbfinn/maml `construct_model` as the golden timings ran it (graph mode, control flow v1,
    placeholders fed with fixed arrays): `tf.map_fn` over tasks (parallel_iterations = meta-batch),
    `tf.gradients` per task, `tf.nn.conv2d` / `max_pool`, batch norm with TF 1.0 moments and no
    scale, per-row cross-entropy / K, `AdamOptimizer(meta_lr)` on total_losses2[num_updates - 1],
    the MiniImagenet clip. Graph with `num_updates` inner steps (TF1 runs the same time with
    main.py's extra test steps, README). Not the original file itself: a same-load reference for
    the ratio, beside the golden figure. Must run in its own process (it disables v2 behaviour).
    """
    import numpy as np
    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()
    f = setting.flags
    batch_size, steps, lr = f['meta_batch_size'], f['num_updates'], f['update_lr']
    norm, conv = f['norm'], f['datasource'] != 'sinusoid'
    tf.set_random_seed(seed)
    arrays = make_batch(setting, seed)
    ph = [tf.placeholder(tf.float32, a.shape) for a in arrays]

    def normalize(x, scope):
        if norm != 'batch_norm':
            return tf.nn.relu(x)
        axes = list(range(len(x.shape) - 1))
        with tf.variable_scope(scope, reuse=tf.AUTO_REUSE):
            beta = tf.get_variable('beta', [x.shape[-1]], initializer=tf.zeros_initializer())
        shift = tf.stop_gradient(tf.reduce_mean(x, axes, keepdims=True))   # TF 1.0 nn.moments
        shifted = x - shift
        count = float(np.prod([int(x.shape[a]) for a in axes]))
        mean_s = tf.reduce_sum(shifted, axes, keepdims=True) / count
        var = tf.reduce_sum(tf.square(shifted), axes, keepdims=True) / count - tf.square(mean_s)
        return tf.nn.relu(tf.nn.batch_normalization(x, mean_s + shift, var, beta, None, 1e-3))

    with tf.variable_scope('model'):
        if conv:
            c_in = 3 if f['datasource'] == 'miniimagenet' else 1
            nf, img = f['num_filters'], int(np.sqrt(setting.dim_input / c_in))
            init = tf.glorot_uniform_initializer()
            weights = {}
            for i, c in enumerate([c_in, nf, nf, nf]):
                weights[f'conv{i + 1}'] = tf.get_variable(f'conv{i + 1}', [3, 3, c, nf], initializer=init)
                weights[f'b{i + 1}'] = tf.Variable(tf.zeros([nf]))
            flat = nf * 25 if f['datasource'] == 'miniimagenet' else nf
            weights['w5'] = tf.get_variable('w5', [flat, setting.dim_output], initializer=init) \
                if f['datasource'] == 'miniimagenet' else tf.Variable(tf.random_normal([flat, setting.dim_output]))
            weights['b5'] = tf.Variable(tf.zeros([setting.dim_output]), name='b5')
        else:
            dims = [setting.dim_input, 40, 40, setting.dim_output]
            weights = {}
            for i in range(3):
                weights[f'w{i + 1}'] = tf.Variable(tf.truncated_normal(dims[i:i + 2], stddev=0.01))
                weights[f'b{i + 1}'] = tf.Variable(tf.zeros([dims[i + 1]]))

    def forward(x, w):
        if not conv:
            h = tf.nn.relu(tf.matmul(x, w['w1']) + w['b1'])
            h = tf.nn.relu(tf.matmul(h, w['w2']) + w['b2'])
            return tf.matmul(h, w['w3']) + w['b3']
        h = tf.reshape(x, [-1, img, img, c_in])
        for i in range(4):
            stride = [1, 1, 1, 1] if f['max_pool'] else [1, 2, 2, 1]
            h = normalize(tf.nn.conv2d(h, w[f'conv{i + 1}'], stride, 'SAME') + w[f'b{i + 1}'], f'model/{i}')
            if f['max_pool']:
                h = tf.nn.max_pool(h, [1, 2, 2, 1], [1, 2, 2, 1], 'VALID')
        h = tf.reshape(h, [-1, flat]) if f['datasource'] == 'miniimagenet' else tf.reduce_mean(h, [1, 2])
        return tf.matmul(h, w['w5']) + w['b5']

    def loss(out, label):
        if conv:
            return tf.nn.softmax_cross_entropy_with_logits_v2(labels=label, logits=out) / f['update_batch_size']
        return tf.reduce_mean(tf.square(tf.reshape(out, [-1]) - tf.reshape(label, [-1])))

    def task_metalearn(inp):
        inputa, inputb, labela, labelb = inp
        keys = list(weights)
        fast, lossesb = dict(weights), []
        for _ in range(steps):
            grads = tf.gradients(loss(forward(inputa, fast), labela), [fast[k] for k in keys])
            if f.get('stop_grad'):
                grads = [tf.stop_gradient(g) for g in grads]
            fast = {k: fast[k] - lr * g for k, g in zip(keys, grads)}
            lossesb.append(loss(forward(inputb, fast), labelb))
        return lossesb

    if norm == 'batch_norm':   # creates the beta variables outside the loop, as the original's `unused` call
        task_metalearn((ph[0][0], ph[2][0], ph[1][0], ph[3][0]))
    lossesb = tf.map_fn(task_metalearn, elems=(ph[0], ph[2], ph[1], ph[3]), dtype=[tf.float32] * steps,
                        parallel_iterations=batch_size)
    meta_loss = tf.reduce_sum(lossesb[steps - 1]) / float(batch_size)
    optimizer = tf.train.AdamOptimizer(f.get('meta_lr', 0.001))
    gvs = optimizer.compute_gradients(meta_loss)
    if f['datasource'] == 'miniimagenet':
        gvs = [(tf.clip_by_value(g, -10, 10), v) for g, v in gvs]
    train_op = optimizer.apply_gradients(gvs)
    sess = tf.InteractiveSession()
    sess.run(tf.global_variables_initializer())
    feed = dict(zip(ph, arrays))

    def step(*_):
        return _Value(sess.run([train_op, meta_loss], feed)[1])
    return step


def count_flops(setting, device, task_groups=0):
    """{'flops', 'by_op', 'method'} of one meta-iteration from the optimized HLO of the batched XLA step."""
    import tensorflow as tf
    with tf.device(device):
        model = build_model(setting, 'xla', task_groups)
        batch = [tf.constant(a) for a in make_batch(setting)]
        fn = tf.function(model._metatrain_step, jit_compile=True)
        hlo = fn.experimental_get_compiler_ir(*batch)(stage='optimized_hlo')
    flops, by_op = hlo_flops(hlo)
    return {'flops': flops, 'by_op': by_op,
            'method': 'optimized XLA HLO of the batched step: 2 x multiply-adds of every dot / convolution'}


def memory_peak_mb(device):
    """Peak memory in MB: the GPU allocator's peak on GPU, else the process's RSS high-water mark."""
    if device.upper().startswith('/GPU'):
        import tensorflow as tf
        return tf.config.experimental.get_memory_info(device.strip('/').upper().replace('DEVICE:', ''))['peak'] / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_one(name, mode, args):
    """Times `mode` of setting `name` in this process; returns its result dict."""
    import numpy as np
    import tensorflow as tf
    if args.intra_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_threads)
    if args.inter_threads:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_threads)
    setting = SETTINGS[name]
    device = '/GPU:0' if args.device == 'gpu' else '/CPU:0'
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    load_start = loadavg()
    t0 = time.perf_counter()
    check = {}
    if mode == 'tf1':   # graph mode: placement by TF's defaults
        step, batch, per_call = tf1_style_step(setting), [], 1
    elif mode in JAX_MODES:
        with tf.device(device):
            model = build_model(setting, 'xla', args.task_groups)   # the initial weights and the reference gradient
            arrays = make_batch(setting)
            step, per_call, check = jax_step_function(setting, mode, model, arrays, args.steps_per_execution)
            batch = []
    else:
        with tf.device(device):
            model = build_model(setting, mode, args.task_groups, args.precision[0])
            arrays = make_batch(setting)
            batch = [tf.constant(a) for a in arrays]
            step, per_call = step_function(model, mode, batch, args.steps_per_execution)
    build_s = time.perf_counter() - t0
    with tf.device(device):
        t0 = time.perf_counter()
        first_loss = float(step(*batch).numpy())
        first_call_s = time.perf_counter() - t0
        for _ in range(args.warmup):
            step(*batch).numpy()
        times, cpu_times = [], []
        for _ in range(args.repeats):
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(args.iters):
                out = step(*batch)
            out.numpy()
            times.append((time.perf_counter() - t0) / args.iters / per_call)
            cpu_times.append((time.process_time() - c0) / args.iters / per_call)
        dispatch = dispatch_costs(arrays, mode != 'function', args.repeats) if mode in (
            'function', 'xla', 'xla_loop') else jax_dispatch_costs(arrays, args.repeats) if mode in JAX_MODES else None
    q1, median, q3 = (float(x) for x in np.percentile(times, [25, 50, 75]))
    if dispatch:   # per meta-iteration: a loop call pays them once for per_call iterations
        dispatch = {'dispatch_s': dispatch[0] / per_call, 'copy_s': dispatch[1],
                    'dispatch_share': (dispatch[0] / per_call + dispatch[1]) / median}
    tf1 = setting.tf1_s
    return {
        'setting': name, 'label': setting.label, 'mode': mode, 'device': args.device, 'precision': args.precision[0],
        'flags': setting.flags,
        'shapes': {'inputa': [setting.flags['meta_batch_size'], setting.rows_a, setting.dim_input],
                   'inputb': [setting.flags['meta_batch_size'], setting.rows_b, setting.dim_input]},
        'build_s': build_s, 'first_call_s': first_call_s, 'warmup': args.warmup, 'repeats': args.repeats,
        'iters_per_repeat': args.iters, 'steps_per_call': per_call, 'times_s': times, **(dispatch or {}),
        'median_s': median, 'q1_s': q1, 'q3_s': q3, 'iqr_s': q3 - q1, 'min_s': min(times), 'max_s': max(times),
        'mean_s': statistics.fmean(times), 'cpu_s': float(np.median(cpu_times)), 'cpu_times_s': cpu_times,
        'peak_memory_mb': memory_peak_mb(device), 'rss_at_start_mb': rss_start,
        'memory_kind': 'GPU allocator peak' if args.device == 'gpu' else 'process RSS high-water (ru_maxrss)',
        'tf1_s': tf1, 'goal_factor': setting.goal, 'goal_s': tf1 / setting.goal if tf1 else None,
        'ratio_tf1_over_ours': tf1 / median if tf1 else None,
        'goal_met': (median <= tf1 / setting.goal) if tf1 else None,
        'post_update_loss_first_call': first_loss, 'finite': bool(np.isfinite(first_loss)),
        'loadavg_start': load_start, 'loadavg_end': loadavg(),
        'task_groups': model.task_groups if mode not in ('tf1',) + JAX_MODES else None, **check,
        'xla_flags': os.environ.get('XLA_FLAGS', ''), 'code': args.code or REPO,
    }


# ------------------------------------------------------------------------------------ driver
def _child_argv(args, name, mode, what):
    argv = [sys.executable, os.path.abspath(__file__), name, '--modes', mode, '--_child', what,
            '--repeats', str(args.repeats), '--warmup', str(args.warmup), '--iters', str(args.iters),
            '--device', args.device, '--steps-per-execution', str(args.steps_per_execution), '--intra-threads', str(args.intra_threads),
            '--inter-threads', str(args.inter_threads), '--task-groups', str(args.task_groups),
            '--precision', args.precision[0]]
    if args.code:
        argv += ['--code', args.code]
    return argv


def _in_child(args, name, mode, what):
    """Runs one measurement in a fresh interpreter and returns its JSON result (or an error dict)."""
    proc = subprocess.run(_child_argv(args, name, mode, what), capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get('TF_CPP_MIN_LOG_LEVEL', '3')))
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith('BENCHMARK_RESULT '):
            return json.loads(line[len('BENCHMARK_RESULT '):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {'setting': name, 'mode': mode, 'error': f'exit {proc.returncode}: ' + ' | '.join(tail)}


def _measure(args, name, mode, what):
    if mode in JAX_MODES and what == 'time':
        import jax_peer
        if not jax_peer.available():   # not a dependency of the port: a row that says so, not an error
            return {'setting': name, 'mode': mode, 'skipped': 'jax not installed'}
    if args.isolate or (mode == 'tf1' and not args._child):   # tf1 turns v2 behaviour off: own process
        return _in_child(args, name, mode, what)
    try:
        if what == 'flops':
            return count_flops(SETTINGS[name], '/GPU:0' if args.device == 'gpu' else '/CPU:0', args.task_groups)
        return run_one(name, mode, args)
    except Exception as e:   # one failing mode should not lose the others' numbers
        return {'setting': name, 'mode': mode, 'error': f'{type(e).__name__}: {e}'}


def _fmt(x, digits=3):
    if x is None:
        return '-'
    if isinstance(x, float):
        return f'{x:.{digits}g}' if abs(x) < 1000 else f'{x:.0f}'
    return str(x)


def _ms(seconds):
    return '-' if seconds is None else f'{1000 * seconds:.3g}'


def _pct(share):
    return '-' if share is None else f'{100 * share:.0f} %'


def _mode_label(result):
    """A result's mode, with its --precision where that is not float32 (e.g. `xla bfloat16`)."""
    precision = result.get('precision', 'float32')
    return result['mode'] + ('' if precision == 'float32' else ' ' + precision)


def machine_line(machine):
    """'<model>, <cores> cores, <MHz> MHz reported, <vector extensions>' of a report's `machine` (a report written
    before the extensions were recorded says 'vector extensions not recorded')."""
    return (f"{machine['cpu_model']}, {machine['cores']} cores, {machine['cpu_mhz']} MHz reported, "
            f"{machine.get('vector_extensions', 'vector extensions not recorded')}")


def markdown(report):
    lines = [f"# Meta-train step benchmark ({report['date']})", '',
             f"Command: `{report['command']}`", '',
             f"Machine: {machine_line(report['machine'])}; TensorFlow {report['tensorflow']}; device {report['device']}"
             + (f"; XLA_FLAGS `{report['xla_flags']}`" if report['xla_flags'] else '') + '.',
             f"Load average (1/5/15 min) at start {report['loadavg_start']}, at end {report['loadavg_end']}.",
             f"Peak: {report['peak_assumption']}.", '',
             'TF1 = median of the original on the reference machine (`timings.json`); golden/ours = TF1 / our '
             'median; goal = TF1 / 3 (TF1 / 5 for d). tf1-rebuild/ours = the `tf1` mode of this run (the '
             "original's graph rebuilt in compat.v1, same machine and load) / our median. CPU s = process CPU "
             'time per iteration (all threads).', '',
             'dispatch ms = an empty compiled call on the inputs (per iteration), copy ms = the host-to-device copy '
             'of a meta-batch; share = (dispatch + copy) / median. xla/this = the `xla` mode\'s median (one '
             'compiled call per step) / this row\'s: the speed-up over it in the same run.', '',
             '| setting | mode | first call s | median s/iter | IQR s | min-max s | CPU s/iter | peak mem MB '
             '| TF1 s/iter | golden/ours | goal | tf1-rebuild/ours | GFLOP/iter | GFLOP/s | % of peak '
             '| dispatch ms | copy ms | share | xla/this |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    checks = []
    for r in report['results']:
        if 'error' in r or 'skipped' in r:
            text = f"error: {r['error'][:160]}" if 'error' in r else r['skipped']
            lines.append(f"| {r['setting']} | {_mode_label(r)} | {text} |" + ' |' * 16)
            continue
        if 'jax_grad_rel_err' in r:
            checks.append(f"* {r['setting']} {r['mode']} (JAX {r['jax_version']}): the meta-gradient equals the "
                          f"port's (XLA, float32) on the same weights and meta-batch ({r['jax_check_tasks']} tasks) "
                          f"to {r['jax_grad_rel_err']:.2g} "
                          'relative (max over variables of max |difference| / max |port|)')
        goal = '-' if r['goal_met'] is None else \
            f"{'met' if r['goal_met'] else 'not met'} (<= {r['goal_s']:.3g})"
        lines.append(
            f"| {r['setting']} | {_mode_label(r)} | {_fmt(r['first_call_s'])} | {_fmt(r['median_s'])} "
            f"| {_fmt(r['iqr_s'], 2)} | {_fmt(r['min_s'])}-{_fmt(r['max_s'])} | {_fmt(r.get('cpu_s'))} "
            f"| {r['peak_memory_mb']:.0f} | {_fmt(r['tf1_s'])} | {_fmt(r['ratio_tf1_over_ours'])} | {goal} "
            f"| {_fmt(r.get('ratio_tf1_rebuild_over_ours'))} | {_fmt(r.get('gflop_per_iter'))} "
            f"| {_fmt(r.get('gflops'))} | {_fmt(r.get('pct_of_peak'), 2)} | {_ms(r.get('dispatch_s'))} "
            f"| {_ms(r.get('copy_s'))} | {_pct(r.get('dispatch_share'))} | {_fmt(r.get('ratio_xla_over_this'))} |")
    if checks:
        lines += ['', 'Correctness of the peer, checked before it was timed:'] + checks
    lines += ['', f"FLOPs: {report['flops_method']}.", '']
    ceiling = report.get('matmul_gflops')
    needs = {r['setting']: r for r in report['results'] if r.get('goal_gflops')}
    if needs and ceiling and report.get('peak_gflops'):
        lines += ['What the goal needs: its GFLOP/s = GFLOP/iteration / goal s/iteration, against the peak and '
                  f"against a 2048x2048 float32 matmul on this machine ({ceiling['tf']:.0f} GFLOP/s in TensorFlow, "
                  f"{ceiling['xla']:.0f} under XLA), the fastest dense kernel a step could be made of.", '',
                  '| setting | GFLOP/iter | goal s/iter | GFLOP/s needed | % of peak | x TF matmul rate | x XLA matmul rate |',
                  '|---|---|---|---|---|---|---|']
        for name, r in needs.items():
            lines.append(f"| {name} | {_fmt(r['gflop_per_iter'])} | {_fmt(r['goal_s'])} | {_fmt(r['goal_gflops'])} "
                         f"| {_fmt(100 * r['goal_gflops'] / report['peak_gflops'], 2)} "
                         f"| {_fmt(r['goal_gflops'] / ceiling['tf'], 2)} | {_fmt(r['goal_gflops'] / ceiling['xla'], 2)} |")
        lines.append('')
    return '\n'.join(lines)


def _write(path, text):
    if path == '-':
        sys.stdout.write(text + '\n')
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text + '\n')
    os.replace(tmp, path)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('settings', nargs='*', metavar='SETTING',
                   help=f"any of {' '.join(SETTINGS)} (default: {' '.join(DEFAULT_SETTINGS)})")
    p.add_argument('--modes', nargs='+', default=list(DEFAULT_MODES), choices=MODES)
    p.add_argument('--repeats', type=int, default=20, help='timed repeats after warm-up')
    p.add_argument('--warmup', type=int, default=3, help='untimed steps after the first call')
    p.add_argument('--iters', type=int, default=1, help='steps per timed repeat')
    p.add_argument('--steps-per-execution', type=int, default=100,
                   help='meta-iterations per compiled call of the xla_loop mode (main.py --steps_per_execution)')
    p.add_argument('--device', choices=('cpu', 'gpu'), default='cpu')
    p.add_argument('--json', help='write the results as JSON to this file (- for stdout)')
    p.add_argument('--markdown', help='write the Markdown table to this file (- for stdout)')
    p.add_argument('--isolate', action=argparse.BooleanOptionalAction, default=True,
                   help='each setting and mode in its own subprocess (default on)')
    p.add_argument('--flops', action=argparse.BooleanOptionalAction, default=True,
                   help='count FLOPs from the optimized HLO (one extra XLA compile per setting)')
    p.add_argument('--peak-ghz', type=float, help='clock for the peak (default: cpu MHz of /proc/cpuinfo)')
    p.add_argument('--intra-threads', type=int, default=0, help='tf.config intra-op threads (0: TF default)')
    p.add_argument('--inter-threads', type=int, default=0, help='tf.config inter-op threads (0: TF default)')
    p.add_argument('--task-groups', type=int, default=0,
                   help='MAML.task_groups of the batched path (0: the default for the device)')
    p.add_argument('--precision', nargs='+', default=['float32'], choices=PRECISIONS,
                   help='main.py --precision of the port\'s modes; several: each mode once per precision, side by '
                   'side in this run (tf1 and the JAX peers are float32 only)')
    p.add_argument('--code', help='import maml.py / utils.py from this directory first (a scratch variant)')
    p.add_argument('--_child', choices=('time', 'flops'), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.settings = args.settings or list(DEFAULT_SETTINGS)
    unknown = [s for s in args.settings if s not in SETTINGS]
    if unknown:
        p.error(f"unknown setting(s) {' '.join(unknown)}; choose from {' '.join(SETTINGS)}")
    fixed = [m for m in args.modes if m in FLOAT32_MODES]
    if fixed and args.precision != ['float32']:
        p.error(f"modes {' '.join(fixed)} run in float32 only; time them without --precision, the port's modes "
                f"({' '.join(m for m in MODES if m not in FLOAT32_MODES)}) with it")
    if args.repeats < 1 or args.iters < 1 or args.warmup < 0 or args.task_groups < 0:
        p.error('--repeats and --iters must be >= 1, --warmup and --task-groups >= 0')
    return args


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    sys.path.insert(0, REPO)
    sys.path.insert(1, os.path.dirname(os.path.abspath(__file__)))   # jax_peer
    if args.code:
        sys.path.insert(0, os.path.abspath(args.code))
    if args._child:   # one measurement, result as one JSON line on stdout
        name, mode = args.settings[0], args.modes[0]
        args.isolate = False
        res = _measure(args, name, mode, args._child)
        print('BENCHMARK_RESULT ' + json.dumps(res))
        return 0

    info = cpu_info()
    peak, assumption = cpu_peak(info, args.peak_ghz)
    import tensorflow as tf   # noqa: F401 (only for its version in the parent)
    machine = machine_info()
    print(f"machine: {machine_line(machine)}; TensorFlow {tf.__version__}", file=sys.stderr, flush=True)
    report = {'date': datetime.datetime.now().isoformat(timespec='seconds'),
              'command': ' '.join(['python', 'scripts/benchmark.py'] + (argv if argv is not None else sys.argv[1:])),
              'machine': machine, 'tensorflow': tf.__version__, 'device': args.device,
              'xla_flags': os.environ.get('XLA_FLAGS', ''), 'code': args.code or REPO,
              'peak_gflops': peak if args.device == 'cpu' else None,
              'peak_assumption': assumption if args.device == 'cpu' else 'n/a (GPU)',
              'flops_method': 'not counted (--no-flops)', 'loadavg_start': loadavg(), 'results': [], 'flops': {},
              'matmul_gflops': matmul_ceiling() if args.device == 'cpu' and args.flops else None}
    for name in dict.fromkeys(args.settings):
        flops = None
        if args.flops:
            f = _measure(args, name, 'xla', 'flops')
            report['flops'][name] = f
            if 'flops' in f:
                flops = f['flops']
                report['flops_method'] = f['method']
            print(f'{name}: {f.get("flops", 0) / 1e9:.3g} GFLOP/iteration {f.get("error", "")}', file=sys.stderr,
                  flush=True)
        for mode, precision in ((m, p) for m in dict.fromkeys(args.modes) for p in dict.fromkeys(args.precision)):
            r = _measure(argparse.Namespace(**dict(vars(args), precision=[precision])), name, mode, 'time')
            if flops and 'median_s' in r:
                r['flops_per_iter'] = flops
                r['gflop_per_iter'] = flops / 1e9
                r['gflops'] = flops / 1e9 / r['median_s']
                r['pct_of_peak'] = 100 * r['gflops'] / peak if args.device == 'cpu' else None
            if flops and r.get('goal_s'):
                r['goal_gflops'] = flops / 1e9 / r['goal_s']   # the rate the goal needs
            report['results'].append(r)
            msg = r.get('error') or r.get('skipped') or (f"median {r['median_s']:.4g} s (IQR {r['iqr_s']:.2g}), first call "
                                     f"{r['first_call_s']:.3g} s, TF1/ours {_fmt(r['ratio_tf1_over_ours'])}, "
                                     f"load {r['loadavg_end']}")
            print(f'{name} {_mode_label(r)}: {msg}', file=sys.stderr, flush=True)
        rebuild = [r for r in report['results'] if r['setting'] == name and r['mode'] == 'tf1' and 'median_s' in r]
        xla = [r for r in report['results'] if r['setting'] == name and r['mode'] == 'xla' and 'median_s' in r
               and r.get('precision', 'float32') == 'float32']
        for r in report['results']:
            if rebuild and r['setting'] == name and 'median_s' in r:
                r['ratio_tf1_rebuild_over_ours'] = rebuild[0]['median_s'] / r['median_s']
            if xla and r['setting'] == name and 'median_s' in r:   # how much faster than one XLA call per step
                r['ratio_xla_over_this'] = xla[0]['median_s'] / r['median_s']
    report['loadavg_end'] = loadavg()
    if args.json:
        _write(args.json, json.dumps(report, indent=1))
    if args.markdown:
        _write(args.markdown, markdown(report))
    if not args.json and not args.markdown:
        print(markdown(report))
    return 1 if any('error' in r for r in report['results']) else 0


if __name__ == '__main__':
    sys.exit(main())
