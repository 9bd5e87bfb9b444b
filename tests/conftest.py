"""Shared test fixtures: where the read-only reference material (../shared) lives."""
import os
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get('MAML_SHARED', os.path.join(os.path.dirname(REPO), 'shared'))
GOLDEN_DIR = os.path.join(SHARED, 'golden', 'tf1')
OMNIGLOT_DIR = os.path.join(SHARED, 'data', 'omniglot')

if REPO not in sys.path:
    sys.path.insert(0, REPO)


def _require(path):
    if not os.path.exists(path):
        if os.environ.get('CI'):  # in CI the material must be there: a skip would hide a failure
            pytest.fail(f'reference material missing: {path}')
        pytest.skip(f'reference material missing: {path} (set MAML_SHARED to the shared folder)')
    return path


@pytest.fixture(scope='session')
def golden_dir():
    return _require(GOLDEN_DIR)


@pytest.fixture(scope='session')
def omniglot_dir():
    return _require(OMNIGLOT_DIR)


def assert_directional_derivative(model, grads, objective, rng, eps=1e-5, rtol=1e-7):
    """Central differences of `objective()` along a random unit direction (drawn from `rng`) of the model's
    meta-variables equal <grads, direction> to `rtol` relative (float64 models; leaves the variables moved)."""
    direction = {k: rng.normal(size=v.shape) for k, v in model.meta_variables.items()}
    norm = np.sqrt(sum(np.sum(d ** 2) for d in direction.values()))
    direction = {k: d / norm for k, d in direction.items()}
    analytic = sum(float(np.sum(grads[k].numpy() * direction[k])) for k in direction)
    base = {k: v.numpy() for k, v in model.meta_variables.items()}
    values = []
    for sign in (1, -1):
        for k, v in model.meta_variables.items():
            v.assign(base[k] + sign * eps * direction[k])
        values.append(objective())
    numeric = (values[0] - values[1]) / (2 * eps)
    assert abs(analytic - numeric) <= rtol * abs(numeric)
