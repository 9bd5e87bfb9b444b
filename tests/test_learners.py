"""Every learner of config.METHODS through main.py's one train()/test() flow: training batches of the right
shape, an interrupted run that resumes bit for bit (weights, optimizer and learner state, data stream), test
results with the right columns."""
import os

import numpy as np
import pytest
import tensorflow as tf

import config as config_lib
import main
from infra import batches
from config import Config

SAVE_EVERY_2 = main.Intervals(summary=2, save=2, print=2, test_print=100)
# The learners whose data paths differ from MAML's run in the default set; the others (MAML's batches,
# compiled steps of their own) in the slow set, as their modules' own resume tests.
FAST = ('reptile', 'baseline')


def _config(tmp_path, omniglot_dir, method, **changes):
    base = dict(datasource='omniglot', data_dir=omniglot_dir, method=method, num_classes=3, update_batch_size=1,
                meta_batch_size=2, num_filters=4, metatrain_iterations=4, seed=3, xla=False,
                logdir=str(tmp_path / method), num_train_classes=30, num_val_classes=10)
    extra = {'reptile': dict(inner_iters=2, inner_batch=3, train_shots=2, eval_iters=2, eval_batch=3),
             'baseline': dict(batch_size=8, finetune_epochs=2), 'baseline_pp': dict(batch_size=8, finetune_epochs=2),
             'protonet': dict(train_classes=4), 'matchingnet': dict(train_classes=4)}.get(method, {})
    return Config(**{**base, **extra, **changes})


def _variables(experiment):
    """Every variable of the learner's checkpoint_items(), by position and name, plus the data generator's state."""
    values = {}
    for name, obj in experiment.model.checkpoint_items().items():
        for i, item in enumerate(tf.nest.flatten(obj)):
            for j, var in enumerate([item] if isinstance(item, tf.Variable) else item.variables):
                values[f'{name}/{i}/{j}/{var.name}'] = var.numpy().copy()
    values['data'] = experiment.data_generator.get_state()
    return values


class Interrupt(Exception):
    pass


def _resume_case(tmp_path, omniglot_dir, method):
    whole = main.prepare(_config(tmp_path / 'whole', omniglot_dir, method))
    main.train(whole, SAVE_EVERY_2)
    expected = _variables(whole)

    def stop_after_2(itr):
        if itr == 2:
            raise Interrupt()
    config = _config(tmp_path / 'parts', omniglot_dir, method)
    with pytest.raises(Interrupt):
        main.train(main.prepare(config), SAVE_EVERY_2, after_step=stop_after_2)   # saved model2 at itr 2
    resumed = main.prepare(config)
    assert resumed.start_itr == 3
    main.train(resumed, SAVE_EVERY_2)
    got = _variables(resumed)
    assert got.keys() == expected.keys() and len(got) > 3
    for k in expected:
        if k == 'data':
            assert got[k] == expected[k]
        else:
            np.testing.assert_array_equal(got[k], expected[k], err_msg=k)


@pytest.mark.parametrize('method', [pytest.param(m, marks=() if m in FAST else pytest.mark.slow)
                                    for m in config_lib.METHODS if m != 'maml'])
def test_every_learner_resumes_bit_for_bit_through_main(tmp_path, omniglot_dir, method, monkeypatch):
    monkeypatch.setenv('MAML_TF2_CACHE', str(tmp_path / 'cache'))
    _resume_case(tmp_path, omniglot_dir, method)


def test_training_batches_follow_each_learner(tmp_path, omniglot_dir, monkeypatch):
    """Reptile's tasks have train_shots examples per class; ProtoNets' training episodes train_classes ways and
    5 queries per class; the baselines get mini-batches over all meta-training classes."""
    monkeypatch.setenv('MAML_TF2_CACHE', str(tmp_path / 'cache'))
    e = main.prepare(_config(tmp_path, omniglot_dir, 'reptile'))
    a, la, b, lb = next(batches.stream(e, train=True))
    assert a.shape == (2, 3 * 2, 784) and la.shape == (2, 6, 3) and b.shape == (2, 3, 784)
    e = main.prepare(_config(tmp_path, omniglot_dir, 'protonet'))
    a, la, b, lb = next(batches.stream(e, train=True))
    assert a.shape == (2, 4 * 1, 784) and b.shape == (2, 4 * 5, 784) and lb.shape == (2, 20, 4)
    a, la, b, lb = next(batches.stream(e, train=False))        # validation: MAML's tasks
    assert a.shape == (2, 3, 784) and b.shape == (2, 3, 784)
    e = main.prepare(_config(tmp_path, omniglot_dir, 'baseline'))
    images, labels = next(batches.stream(e, train=True))
    assert images.shape == (8, 784) and labels.shape == (8, 30 * 4)


def test_reptile_protocol_batches_are_the_references_tasks(tmp_path, omniglot_dir, monkeypatch):
    """--protocol=reptile: 0/1 pixels with background 1; evaluation tasks hold out each class's first example
    as its one query."""
    monkeypatch.setenv('MAML_TF2_CACHE', str(tmp_path / 'cache'))
    e = main.prepare(_config(tmp_path, omniglot_dir, 'reptile', protocol='reptile', num_train_classes=-1,
                             num_val_classes=-1, update_batch_size=2))
    a, la, b, lb = next(batches.stream(e, train=True))
    assert a.shape == (2, 3 * 2, 784) and set(np.unique(a.numpy())) <= {0.0, 1.0}
    assert np.mean(a.numpy()) > 0.5                                # background 1
    dg = e.data_generator
    state = dg.get_state()
    images, labels = dg.sample_mini_dataset(3, 3, train=False)
    dg.set_state(state)
    a, la, b, lb = batches.reptile_batch(dg, e.run_config, e.run_config.update_batch_size, train=False)
    first = [list(labels).index(c) for c in range(3)]
    np.testing.assert_array_equal(b.numpy()[0], images[first].reshape(3, -1))
    assert a.shape == (1, 3 * 2, 784) and lb.numpy()[0].argmax(-1).tolist() == [0, 1, 2]


def test_a_flag_of_another_learner_is_one_line_error():
    with pytest.raises(main.UsageError, match=r'--inner_iters means nothing to --method=protonet'):
        main.check_config(Config(method='protonet', datasource='omniglot'), explicit=('inner_iters',))
    with pytest.raises(main.UsageError, match=r'--protocol=reptile'):
        main.check_config(Config(method='maml', protocol='reptile', datasource='omniglot'))
    with pytest.raises(main.UsageError, match=r'classifies images'):
        main.check_config(Config(method='protonet'))
