"""Sinusoid regression (the paper's section 5.1): y = A sin(x - phase), A in [0.1, 5], phase in [0, pi],
x in [-5, 5]."""
import numpy as np

AMP_RANGE = [0.1, 5.0]
PHASE_RANGE = [0, np.pi]
INPUT_RANGE = [-5.0, 5.0]


def generate_sinusoid_batch(rng, batch_size, num_samples, amp_range=AMP_RANGE, phase_range=PHASE_RANGE,
                            input_range=INPUT_RANGE, input_idx=None, dim_input=1, dim_output=1):
    """The original generate_sinusoid_batch, drawing from the np.random.RandomState rng.

    Returns (init_inputs [B, S, 1], outputs [B, S, 1], amp [B], phase [B]), float64. Draw
    order: amp for all tasks, phase for all tasks, then each task's S inputs. `input_idx`
    replaces inputs from that index on by a linspace.
    """
    b, s = batch_size, num_samples
    amp = rng.uniform(amp_range[0], amp_range[1], [b])
    phase = rng.uniform(phase_range[0], phase_range[1], [b])
    outputs = np.zeros([b, s, dim_output])
    init_inputs = np.zeros([b, s, dim_input])
    for func in range(b):
        init_inputs[func] = rng.uniform(input_range[0], input_range[1], [s, 1])
        if input_idx is not None:
            init_inputs[:, input_idx:, 0] = np.linspace(input_range[0], input_range[1],
                                                        num=s - input_idx, retstep=False)
        outputs[func] = amp[func] * np.sin(init_inputs[func] - phase[func])
    return init_inputs, outputs, amp, phase
