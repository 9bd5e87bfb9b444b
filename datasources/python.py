"""A user's task family in Python (`--datasource=MODULE:FUNCTION`): regression tasks from the user's own function.

FUNCTION(rng, batch_size, num_samples) -> (inputs [B, S, dim_input], outputs [B, S, dim_output]) is a task
sampler: B tasks of S examples each, drawn from rng (a numpy RandomState that --seed seeds and the
checkpoints save, so a run is reproducible and resumes exactly). The learners treat the family as they treat
the sinusoid: the first K = --update_batch_size examples of each task are the support (inner loop), the
others the query, S = 2K (or K + --num_query); MSE loss, fully connected network [40, 40] (--conv is
ignored). MODULE is imported from the working directory or PYTHONPATH. Example (docs/DATA.md):

    # my_tasks.py                         python main.py --datasource=my_tasks:lines --update_batch_size=5 ...
    import numpy as np
    def lines(rng, batch_size, num_samples):
        slope = rng.uniform(-2, 2, [batch_size, 1, 1])
        x = rng.uniform(-5, 5, [batch_size, num_samples, 1])
        return x, slope * x
"""
import importlib
import os
import sys

import numpy as np

from datasources.common import DataError

PROBE_SEED = 0   # the shape probe draws from its own RandomState, never from the run's


def load_sampler(datasource):
    """The function MODULE:FUNCTION names (the working directory first on the import path)."""
    module_name, _, function = datasource.partition(':')
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise DataError(f'--datasource={datasource}: cannot import {module_name} ({e}); put {module_name}.py in '
                        f'the working directory or on PYTHONPATH') from None
    fn = getattr(module, function, None)
    if not callable(fn):
        raise DataError(f'--datasource={datasource}: {module_name} has no function {function}; define '
                        f'{function}(rng, batch_size, num_samples) -> (inputs [B, S, d_in], outputs [B, S, d_out])')
    return fn


def sample(fn, datasource, rng, batch_size, num_samples):
    """(inputs [B, S, dim_input], outputs [B, S, dim_output]) float64 from the user's sampler, shapes checked."""
    try:
        out = fn(rng, batch_size, num_samples)
        x, y = (np.asarray(v, np.float64) for v in out)
    except DataError:
        raise
    except Exception as e:
        raise DataError(f'--datasource={datasource}: the sampler failed ({type(e).__name__}: {e}); it must return '
                        f'(inputs [B, S, d_in], outputs [B, S, d_out])') from None
    want = (batch_size, num_samples)
    if x.ndim != 3 or y.ndim != 3 or x.shape[:2] != want or y.shape[:2] != want:
        raise DataError(f'--datasource={datasource}: the sampler returned shapes {x.shape} and {y.shape}, not '
                        f'[{batch_size}, {num_samples}, d_in] and [{batch_size}, {num_samples}, d_out]')
    return x, y


def probe(fn, datasource, num_samples):
    """(dim_input, dim_output) of the sampler, from one task drawn from a RandomState of its own."""
    x, y = sample(fn, datasource, np.random.RandomState(PROBE_SEED), 1, num_samples)
    return x.shape[2], y.shape[2]
