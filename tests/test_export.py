"""scripts/export.py: a trained run as a SavedModel whose adapt_and_predict(support_images, support_labels,
query_images) gives, in a process that imports nothing of this repository, the logits main.py's test computes."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import main
from config import Config
from conftest import REPO
from infra import batches

SCRIPT = os.path.join(REPO, 'scripts', 'export.py')
LOAD = '''
import json, sys
import numpy as np
import tensorflow as tf
assert not any(m in sys.modules for m in ('main', 'maml', 'config', 'infra', 'learners')), 'repository imported'
inputs = np.load(sys.argv[2])
model = tf.saved_model.load(sys.argv[1])
logits = model.adapt_and_predict(tf.constant(inputs['support']), tf.constant(inputs['labels']),
                                 tf.constant(inputs['query']))
served = model.signatures['adapt_and_predict'](support_images=tf.constant(inputs['support']),
                                               support_labels=tf.constant(inputs['labels']),
                                               query_images=tf.constant(inputs['query']))
np.save(sys.argv[3], np.stack([logits.numpy(), next(iter(served.values())).numpy()]))
'''


def _argv(config):
    """main.py flags that give `config` (the fields that differ from the defaults)."""
    default = Config()
    return [f'--{f.name}={getattr(config, f.name)}' for f in dataclasses.fields(Config)
            if getattr(config, f.name) != getattr(default, f.name)]


def _caller_images(rows, config):
    """Images [n, 28, 28, 1] in [0, 1] as a caller has them, of the learner's input rows (Omniglot: 1 - x)."""
    pixels = np.round((1.0 - rows) * 255.0)           # the PNG's values, 0..255
    return (pixels / np.float32(255.0)).astype(np.float32).reshape(-1, 28, 28, 1)


@pytest.mark.parametrize('method, extra', [
    ('maml', {}),
    pytest.param('protonet', dict(train_classes=4), marks=pytest.mark.slow),
    pytest.param('baseline', dict(batch_size=8, finetune_epochs=2), marks=pytest.mark.slow),
])
def test_exported_classifier_gives_the_evaluations_logits_without_the_repository(method, extra, tmp_path,
                                                                                 omniglot_dir, monkeypatch):
    monkeypatch.setenv('MAML_TF2_CACHE', str(tmp_path / 'cache'))
    config = Config(datasource='omniglot', data_dir=omniglot_dir, method=method, num_classes=3, update_batch_size=1,
                    meta_batch_size=2, num_filters=4, metatrain_iterations=2, seed=3, xla=False,
                    logdir=str(tmp_path / 'logs'), num_train_classes=30, num_val_classes=10, **extra)
    main.train(main.prepare(config), main.Intervals(summary=100, save=100, print=100, test_print=100))
    out = tmp_path / 'served'
    env = dict(os.environ, MAML_TF2_CACHE=str(tmp_path / 'cache'))
    r = subprocess.run([sys.executable, SCRIPT, *_argv(config), '--out=' + str(out)], capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1].startswith(f'[maml-tf2] wrote {out}: SavedModel with adapt_and_predict(')
    with open(out / 'maml_tf2.json') as f:
        info = json.load(f)
    assert info['support_shape'] == [3, 28, 28, 1] and info['query_shape'] == [3, 28, 28, 1]
    assert info['logits_shape'] == [3, 3] and info['iterations_trained'] == 2
    assert not [n for n in os.listdir(tmp_path) if '.tmp' in n]

    # the evaluation of the first validation task, in this process
    e = main.prepare(config.replace(train=False))
    inputa, labela, inputb, labelb = next(batches.stream(e, train=False))
    expected = e.model.evaluate(inputa, labela, inputb, labelb).outputbs[-1][0].numpy()
    np.savez(tmp_path / 'task.npz', support=_caller_images(inputa.numpy()[0], config),
             labels=np.argmax(labela.numpy()[0], -1).astype(np.int32), query=_caller_images(inputb.numpy()[0], config))
    clean = {k: v for k, v in env.items() if k != 'PYTHONPATH'}
    r = subprocess.run([sys.executable, '-c', LOAD, str(out), str(tmp_path / 'task.npz'), str(tmp_path / 'got.npy')],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600, env=clean)
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / 'got.npy')
    assert got.shape == (2, 3, 3)
    np.testing.assert_allclose(got[0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got[0], got[1])


def test_export_refuses_a_folder_that_is_not_empty_and_a_missing_out(tmp_path):
    (tmp_path / 'full').mkdir()
    (tmp_path / 'full' / 'x').write_text('')
    full = ['--out=' + str(tmp_path / 'full')]
    for args, message in ((full, 'exists and is not an empty folder; choose a new folder'),
                          ([], '--out=DIR is missing')):
        r = subprocess.run([sys.executable, SCRIPT, '--datasource=omniglot', *args], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 2 and r.stderr.startswith('main.py: error: ') and message in r.stderr, r.stderr
        assert len(r.stderr.splitlines()) == 1
