"""One inner step of a --per_step_bn_stats model, taken with the batch's statistics and with the running ones.

    python scripts/diagnose_bn_stats.py <main.py flags of the trained run> [--tasks=20]

For the first --tasks test tasks: query accuracy after one inner step of update_lr on the support set, the
largest |logit|, and the support gradient's norm per weight of the first task, each with the network normalised
by the batch's own statistics (as in meta-training and, like the released MAML++ code, in evaluation) and by the
running statistics of row 0 (as --per_step_bn_stats evaluated before 2026-12-07, and as the released code never
does). Evidence for docs/RESULTS.md (why evaluation with running statistics is at chance on Omniglot).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import main  # noqa: E402
from infra import batches


def one_step(model, a, la, b, lb, running):
    """(query accuracy, max |logit|, {weight: support-gradient norm}) of one inner step of update_lr."""
    import tensorflow as tf
    model._normalise_with_running_stats = running
    try:
        w = model._task_weights(1)
        with tf.GradientTape() as tape:
            tape.watch(list(w.values()))
            loss = tf.reduce_sum(model.loss_func(model.step_forward(a, w, 0), la))
        grads = tape.gradient(loss, w)
        out = model.step_forward(b, {k: w[k] - model.update_lr * grads[k] for k in w}, 0)
    finally:
        model._normalise_with_running_stats = False
    acc = float(tf.reduce_mean(tf.cast(tf.argmax(out, -1) == tf.argmax(lb, -1), tf.float32)))
    return acc, float(tf.reduce_max(tf.abs(out))), {k: float(tf.norm(g)) for k, g in grads.items()}


def run(argv):
    """Prints the two lines (batch, running statistics) for main.py flags `argv` (plus --tasks=N)."""
    flags = [a for a in argv if not a.startswith('--tasks=')]
    tasks = next((int(a[8:]) for a in argv if a.startswith('--tasks=')), 20)
    main.FLAGS(['main.py', *flags, '--train=False', '--test_set=True'])
    main.import_tensorflow()
    experiment = main.prepare(main.config_from_flags(), main.explicit_flags())
    if not experiment.model.bn_stats:
        main.fail('the run has no running statistics; pass the flags of a --per_step_bn_stats run')
    sample = [next(b) for b in [batches.stream(experiment, False)] for _ in range(tasks)]
    for running in (False, True):
        results = [one_step(experiment.model, *batch[:4], running) for batch in sample]
        print(f'{"running" if running else "batch"} statistics: query accuracy {np.mean([r[0] for r in results]):.3f}'
              f' over {tasks} tasks, median max|logit| {np.median([r[1] for r in results]):.3g}, first task\'s '
              'gradient norms ' + ', '.join(f'{k} {v:.3g}' for k, v in results[0][2].items()))


if __name__ == '__main__':
    run(sys.argv[1:])
