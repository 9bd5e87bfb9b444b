"""Network plug-ins (networks/): a Keras model as a pure function of its weights, run by every learner.

- The paper's Conv-4 written as a Keras model (networks.builtin.conv4), given the functional path's weights, gives
  the functional path's loss and meta-gradient from the same inputs (second and first order, with and without XLA).
- Every learner runs one meta-iteration, saves, resumes and tests through main.py on a small Keras model defined
  here (a MODULE:FUNCTION network).
- ResNet-12's output shapes and parameter count (MetaOptNet's 64-160-320-640; 16,000 / 640 features on 84x84).
- Bad --network values are one-line usage errors.
"""
import os
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import keras

import config as config_lib
import main
import networks
from config import Config
from maml import MAML
from infra import results as infra_results
from networks import keras_net, layers, resnet12

WAYS = 3
PRE_BN_BIASES = ('b1', 'b2', 'b3', 'b4')


# ---------------------------------------------------------------- Conv-4: Keras vs the functional path
def _conv4_config(stop_grad, xla):
    return Config(datasource='omniglot', num_classes=WAYS, update_batch_size=1, num_updates=1, update_lr=0.4,
                  num_filters=4, meta_batch_size=2, stop_grad=stop_grad, seed=5, xla=xla)


def _functional_keys(keras_keys):
    """{keras key: functional key} for the Conv-4: conv_i kernel/bias -> conv<i>/b<i>, batch norm i -> '<i-1>/beta',
    the dense layer -> w5/b5 (the Keras layers in model order)."""
    mapping, conv, norm = {}, 0, 0
    for key in keras_keys:
        if key.endswith('conv2d/kernel'):
            conv += 1
            mapping[key] = f'conv{conv}'
        elif key.endswith('conv2d/bias'):
            mapping[key] = f'b{conv}'
        elif key.endswith('/beta'):
            mapping[key] = f'{norm}/beta'
            norm += 1
        elif key.endswith('dense/kernel'):
            mapping[key] = 'w5'
        elif key.endswith('dense/bias'):
            mapping[key] = 'b5'
    return mapping


def _batch(seed, tasks=2):
    rng = np.random.RandomState(seed)
    labels = [np.stack([np.eye(WAYS)[rng.permutation(WAYS)] for _ in range(tasks)]) for _ in range(2)]
    images = [rng.uniform(size=(tasks, WAYS, 784)) for _ in range(2)]
    return [tf.constant(v, tf.float32) for v in (images[0], labels[0], images[1], labels[1])]


def _meta_gradients(model, xla):
    step = tf.function(lambda *b: model.meta_gradients(*b), jit_compile=xla)
    out, grads = step(*_batch(0))
    return float(out.total_losses2[-1]), {k: g.numpy() for k, g in grads.items()}


# XLA's compile of a Keras model's second-order step takes minutes on 2 shared cores: those two cases are slow
@pytest.mark.parametrize('stop_grad,xla', [(False, False), (True, False),
                                           pytest.param(False, True, marks=pytest.mark.slow),
                                           pytest.param(True, True, marks=pytest.mark.slow)])
def test_keras_conv4_gives_the_functional_loss_and_meta_gradient(stop_grad, xla):
    config = _conv4_config(stop_grad, xla)
    functional = MAML(784, WAYS, 2, config)
    keras_maml = networks.learner_class(config.replace(network='conv4'), MAML)(
        784, WAYS, 2, config.replace(network='conv4'))
    mapping = _functional_keys(keras_maml.meta_variables)
    assert sorted(mapping.values()) == sorted(functional.meta_variables)
    for key, var in keras_maml.meta_variables.items():
        var.assign(functional.meta_variables[mapping[key]])
    loss, grads = _meta_gradients(functional, xla)
    keras_loss, keras_grads = _meta_gradients(keras_maml, xla)
    assert keras_loss == pytest.approx(loss, rel=1e-5)
    kernel = max(np.max(np.abs(grads[f'conv{i}'])) for i in range(1, 5))
    for key, g in keras_grads.items():
        ref = grads[mapping[key]]
        if mapping[key] in PRE_BN_BIASES:   # true gradient 0 (batch norm follows): rounding noise on both sides
            assert np.max(np.abs(g)) <= 1e-4 * kernel, key
        else:
            assert np.max(np.abs(g - ref)) <= 1e-4 * np.max(np.abs(ref)), key



@pytest.mark.slow
def test_stock_keras_batch_norm_misses_the_second_order_term(monkeypatch):
    """Why networks.layers.BatchNormalization exists: with stock Keras moments (tf.nn.moments, stop-gradient shift)
    the same Conv-4 gives the first-order meta-gradient (to float32 rounding) but not the second-order one (measured
    on this case: max |diff| / max |reference| 0.70 on conv1, 6.1e-6 first order; docs/NETWORKS.md)."""
    monkeypatch.setattr(layers.BatchNormalization, '_moments', keras.layers.BatchNormalization._moments)
    errors = {}
    for stop_grad in (False, True):
        config = _conv4_config(stop_grad, False)
        functional = MAML(784, WAYS, 2, config)
        stock = networks.learner_class(config.replace(network='conv4'), MAML)(
            784, WAYS, 2, config.replace(network='conv4'))
        mapping = _functional_keys(stock.meta_variables)
        for key, var in stock.meta_variables.items():
            var.assign(functional.meta_variables[mapping[key]])
        _, grads = _meta_gradients(functional, False)
        _, stock_grads = _meta_gradients(stock, False)
        errors[stop_grad] = max(np.max(np.abs(g - grads[mapping[k]])) / np.max(np.abs(grads[mapping[k]]))
                                for k, g in stock_grads.items() if mapping[k] not in PRE_BN_BIASES)
    assert errors[True] <= 1e-4 and errors[False] > 1e-2, errors

# ---------------------------------------------------------------- every learner on a user's Keras model
USER_MODULE = '''
import keras


def build(input_shape, num_outputs):
    """A small CNN: two strided convs with batch norm, dropout, and a dense output (none for the embedding)."""
    inp = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, strides=3, padding='same')(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(4, 3, strides=3, padding='same')(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.2)(x)
    if num_outputs is not None:
        x = keras.layers.Dense(num_outputs)(x)
    return keras.Model(inp, x)


def not_a_model(input_shape, num_outputs):
    return 42
'''

SAVE_EVERY_1 = main.Intervals(summary=1, save=1, print=1, test_print=100)
# (method, extra flags): the inner-loop learners second and first order and with the MAML++ switches, Reptile, the
# metric learners and the baselines
LEARNERS = [
    ('maml', {}),
    ('maml', dict(stop_grad=True)),
    ('maml', dict(multi_step_loss=True, lslr=True, per_step_bn=True, first_order_epochs=0, cosine_meta_lr=True,
                  num_updates=2)),
    ('metasgd', {}),
    ('anil', {}),
    ('reptile', dict(inner_iters=2, inner_batch=3, train_shots=2, eval_iters=2, eval_batch=3)),
    ('protonet', dict(train_classes=4)),
    ('matchingnet', dict(train_classes=4)),
    ('baseline', dict(batch_size=8, finetune_epochs=2)),
    ('baseline_pp', dict(batch_size=8, finetune_epochs=2)),
]
FAST = (0, 6)      # plain MAML and ProtoNets in the default set (each traces a Keras model several times: minutes)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """`tinynet.py` in a fresh working directory (how a user puts MODULE beside their command)."""
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'tinynet.py').write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.chdir(work)
    monkeypatch.setenv('MAML_TF2_CACHE', str(tmp_path / 'cache'))
    yield 'tinynet'
    sys.modules.pop('tinynet', None)


def _learner_config(tmp_path, omniglot_dir, method, **changes):
    return Config(**{**dict(datasource='omniglot', data_dir=omniglot_dir, method=method, num_classes=3,
                            update_batch_size=1, meta_batch_size=2, metatrain_iterations=2, seed=3, xla=False,
                            logdir=str(tmp_path / 'logs'), num_train_classes=30, num_val_classes=10,
                            network='tinynet:build'), **changes})


def _state(model):
    values = {}
    for name, obj in model.checkpoint_items().items():
        for i, item in enumerate(tf.nest.flatten(obj)):
            for j, var in enumerate([item] if isinstance(item, tf.Variable) else item.variables):
                values[f'{name}/{i}/{j}/{var.name}'] = var.numpy().copy()
    return values


@pytest.mark.parametrize('method,extra', [pytest.param(m, e, marks=() if i in FAST else pytest.mark.slow,
                                                       id=m + ('_' + '_'.join(e) if e and m == 'maml' else ''))
                                          for i, (m, e) in enumerate(LEARNERS)])
def test_every_learner_trains_saves_resumes_and_tests_a_user_model(tmp_path, omniglot_dir, user_module, method,
                                                                     extra, monkeypatch):
    monkeypatch.setattr(main, 'NUM_TEST_POINTS', 2)
    config = _learner_config(tmp_path, omniglot_dir, method, **extra)
    assert '.networktinynet-build' in config_lib.exp_string(config)
    first = main.prepare(config.replace(metatrain_iterations=1))
    assert type(first.model).__name__.startswith('Keras')
    before = _state(first.model)
    main.train(first, SAVE_EVERY_1)                    # one meta-iteration, saved as model1
    trained = _state(first.model)
    assert any(not np.array_equal(before[k], trained[k]) for k in before)
    resumed = main.prepare(config)                     # resumes from model1: the same state, bit for bit
    assert resumed.start_itr == 1
    got = _state(resumed.model)
    assert got.keys() == trained.keys()
    for k in trained:
        np.testing.assert_array_equal(got[k], trained[k], err_msg=k)
    main.train(resumed, SAVE_EVERY_1)                  # the second iteration
    rows = main.test(main.prepare(config.replace(train=False)))
    assert rows.shape[0] == 2 and np.all(np.isfinite(rows))
    results = os.path.join(resumed.exp_dir, infra_results.RESULTS_DIR)
    assert any(f.endswith('.json') for f in os.listdir(results))


# ---------------------------------------------------------------- ResNet-12
def _trainable_count(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def test_resnet12_shapes_and_parameter_count():
    """MetaOptNet's ResNet-12: 84x84x3 -> 5x5x640 = 16,000 features (640 with global average pooling), 12,424,320
    trainable parameters (convs 12,414,848 + batch norm 9,472), 4 DropBlock/dropout layers."""
    model = resnet12.resnet12((84, 84, 3))
    assert tuple(model.output.shape) == (None, 16000)
    assert _trainable_count(model) == 12414848 + 9472
    assert tuple(resnet12.resnet12((84, 84, 3), avg_pool=True).output.shape) == (None, 640)
    head = resnet12.resnet12((84, 84, 3), 5, avg_pool=True)
    assert tuple(head.output.shape) == (None, 5) and _trainable_count(head) == 12414848 + 9472 + 640 * 5 + 5
    drops = [l for l in model._flatten_layers() if isinstance(l, layers.DropBlock)]
    assert [(l.block_size, l.drop_rate) for l in drops] == [(1, 0.1), (1, 0.1), (5, 0.1), (5, 0.1)]


def test_resnet12_runs_through_stateless_call_on_cifar_size():
    """32x32 inputs: DropBlock size 2, 2x2x640 features; training mode drops and moves the counters and batch-norm
    statistics (returned, not written), inference is deterministic."""
    model = resnet12.resnet12((32, 32, 3))
    net = keras_net.KerasNetwork(model, (32, 32, 3))
    assert net.output_size == 2 * 2 * 640 and net.batch_dependent and len(net.norm_keys) == 2 * 16
    x = tf.random.stateless_uniform([2, 32, 32, 3], [1, 2])
    weights, state = net.initial_weights(), net.initial_state()
    out, new = net(weights, state, x, training=True)
    assert out.shape == (2, 2560)
    moved = [k for k in state if not np.array_equal(state[k].numpy(), new[k].numpy())]
    assert any('moving_mean' in k for k in moved) and any(k.endswith('/calls') for k in moved)
    for v, k in zip(model.non_trainable_variables, net.state_keys):   # nothing written into the model
        np.testing.assert_array_equal(v.numpy(), state[k].numpy())
    a, _ = net(weights, state, x, training=False)
    b, _ = net(weights, state, x, training=False)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_dropblock_mask_drops_whole_blocks():
    """block_mask: every dropped position lies in a bs x bs square of drops anchored at a seed."""
    mask = layers.block_mask(tf.constant([3, 4]), [1, 9, 9, 1], 0.08, 3).numpy()[0, :, :, 0]
    assert mask.shape == (9, 9) and set(np.unique(mask)) <= {0.0, 1.0} and 0 < mask.sum() < 81
    dropped = np.argwhere(mask == 0)
    for y, x in dropped:   # some 3x3 all-dropped square contains (y, x)
        assert any(np.all(mask[a:a + 3, b:b + 3] == 0) for a in range(max(0, y - 2), min(y, 6) + 1)
                   for b in range(max(0, x - 2), min(x, 6) + 1))


# ---------------------------------------------------------------- flags
def test_network_names_the_experiment():
    base = Config(datasource='omniglot')
    assert config_lib.exp_string(base) == config_lib.exp_string(base.replace(network='default'))
    assert config_lib.exp_string(base.replace(network='resnet12')).endswith('.networkresnet12')
    assert config_lib.exp_string(base.replace(network='mods.nets:cnn')).endswith('.networkmods.nets-cnn')


@pytest.mark.parametrize('network,message', [
    ('resnet', r"unknown --network='resnet'; use default, conv4, fc, resnet12, resnet12_gap or MODULE:FUNCTION"),
    ('no_such_module_x:build', r'--network=no_such_module_x:build: cannot import no_such_module_x; put '
                               r'no_such_module_x.py in the working directory or on PYTHONPATH'),
    ('tinynet', r"unknown --network='tinynet'; use default"),
])
def test_bad_network_is_a_one_line_usage_error(user_module, network, message):
    with pytest.raises(main.UsageError, match=message) as e:
        main.check_config(Config(datasource='omniglot', network=network))
    assert '\n' not in str(e.value)


def test_network_conflicts_are_one_line_usage_errors(user_module):
    with pytest.raises(main.UsageError, match=r'--network=conv4 is a convolutional network for images'):
        main.check_config(Config(network='conv4'))
    with pytest.raises(main.UsageError, match=r'--precision works with the paper\'s functional networks only'):
        main.check_config(Config(datasource='omniglot', network='conv4', precision='bfloat16'))
    with pytest.raises(main.UsageError, match=r'--method=maml: --per_step_bn needs normalisation layers'):
        main.build_learner(Config(datasource='omniglot', network='fc', norm='None', per_step_bn=True),
                           _Data(784, 5))
    with pytest.raises(main.UsageError, match=r"--method=maml: --network=tinynet:missing: tinynet has no function "
                                              r"'missing'; define missing\(input_shape, num_outputs\) returning a "
                                              r"keras.Model"):
        main.build_learner(Config(datasource='omniglot', network='tinynet:missing'), _Data(784, 5))
    with pytest.raises(main.UsageError, match=r'--method=maml: not_a_model returned int, not a keras.Model'):
        main.build_learner(Config(datasource='omniglot', network='tinynet:not_a_model'), _Data(784, 5))


class _Data:
    """What build_learner reads of a data generator."""

    def __init__(self, dim_input, dim_output):
        self.dim_input, self.dim_output, self.num_train_classes_total = dim_input, dim_output, 20
