"""Several meta-iterations per compiled call (the idea of Keras' `steps_per_execution`).

A small step (the sinusoid's is ~10 MFLOP) costs less than the Python dispatch of the call that runs it.
`repeated(step)` compiles a loop over a stack of pre-drawn meta-batches, so that main.py's train() pays
that dispatch once per chunk of iterations. The loop body is the learner's own step function, run in the
same order on the same batches, so the weights after a chunk are those of one call per iteration.
"""
import tensorflow as tf


def repeated(step):
    """fn(inputa, labela, inputb, labelb, begin, end) -> objectives [N]: `step(a, la, b, lb)` on meta-batches
    begin..end-1 of the stacks ([N, B, rows, dim]; the rest is padding or another call's and does not run), in
    order, inside one graph. objectives[i] is what step i returned; the entries outside begin..end-1 are 0."""
    def steps(inputa, labela, inputb, labelb, begin, end):
        def body(i, objectives):
            return i + 1, objectives.write(i, step(inputa[i], labela[i], inputb[i], labelb[i]))
        # An explicit bound, so that XLA compiles the loop once for every (begin, end), not once per value; one
        # iteration at a time, as step i + 1 reads the variables step i writes (TensorFlow's executor would
        # otherwise start the next iterations early: nothing but the variables links them).
        _, objectives = tf.while_loop(
            lambda i, _: i < end, body, (begin, tf.TensorArray(inputa.dtype, size=inputa.shape[0], element_shape=[])),
            maximum_iterations=inputa.shape[0], parallel_iterations=1)
        return objectives.stack()
    return steps


def stack_batches(batches, size):
    """The meta-batches (a list of (inputa, labela, inputb, labelb)) as 4 stacks of `size` [size, ...], the
    last batch repeated as padding (a fixed N, so that every chunk length runs the same compiled loop)."""
    padded = list(batches) + [batches[-1]] * (size - len(batches))
    return [tf.stack(field) for field in zip(*padded)]
