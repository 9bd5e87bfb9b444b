"""Shared test fixtures: where the read-only reference material (../shared) lives."""
import os
import sys

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
