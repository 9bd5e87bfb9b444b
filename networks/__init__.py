"""Network plug-ins: a Keras model in place of the paper's functional networks (`--network`).

`--network` is '' / 'default' (the paper's network for the data source, on the functional path of maml.py and
learners/, untouched), a built-in Keras model (`BUILTIN`: conv4, fc, resnet12, resnet12_gap) or `MODULE:FUNCTION`, a
function `FUNCTION(input_shape, num_outputs) -> keras.Model` imported from the working directory or PYTHONPATH.

What the rest of the code calls:
- `problem(config)`: why `config.network` cannot run (one line, '<what>; <how to fix>'), or None
  (infra/checks.check_config; imports nothing of TensorFlow, finds MODULE without importing it).
- `learner_class(config, base)`: the class that runs `base` (a learner class of config.METHODS) on the network
  (networks/learners.py); `base` itself for the default network (learners.learner_class).
- `build(config, dim_input, num_outputs)`: the KerasNetwork (networks/keras_net.py) of `config.network`.
"""
import contextlib
import importlib
import os
import sys

import config as config_lib

DEFAULT = ('', 'default')
BUILTIN = ('conv4', 'fc', 'resnet12', 'resnet12_gap')
IMAGE_ONLY = ('conv4', 'resnet12', 'resnet12_gap')
REGISTERED = {}    # name -> f(input_shape, num_outputs) -> keras.Model, given as a function (api.py)


def register(function):
    """The --network name under which `function` (input_shape, num_outputs) -> keras.Model is found in this process:
    'py-<module>.<qualname>' (the Python API passes functions, not module paths)."""
    name = f'py-{getattr(function, "__module__", "fn")}.{getattr(function, "__qualname__", "network")}'
    REGISTERED[name] = function
    return name


def is_default(name):
    """True for the paper's functional networks ('' or 'default')."""
    return name in DEFAULT


@contextlib.contextmanager
def _working_directory_on_path():
    """sys.path with the working directory first while the block runs (MODULE of --network=MODULE:FUNCTION is
    looked up there, as `python main.py` finds modules beside the command)."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            sys.path.remove(cwd)


def resolve(name):
    """The function `f(input_shape, num_outputs) -> keras.Model` that `--network=name` names (not a built-in).
    Raises ValueError with a one-line message if MODULE does not import or has no callable FUNCTION."""
    module_name, _, function_name = name.partition(':')
    if not module_name or not function_name:
        raise ValueError(f'unknown --network={name!r}; use default, {", ".join(BUILTIN)} or MODULE:FUNCTION '
                         f'(a function (input_shape, num_outputs) -> keras.Model in MODULE.py)')
    try:
        with _working_directory_on_path():
            module = importlib.import_module(module_name)
    except Exception as e:   # the user's module: any exception is one line
        first = str(e).splitlines()[0] if str(e) else ''
        raise ValueError(f'--network={name}: cannot import {module_name} ({type(e).__name__}: {first}); put '
                         f'{module_name}.py in the working directory or on PYTHONPATH') from None
    function = getattr(module, function_name, None)
    if function is None or not callable(function):
        raise ValueError(f'--network={name}: {module_name} has no function {function_name!r}; define '
                         f'{function_name}(input_shape, num_outputs) returning a keras.Model')
    return function


def _module_problem(name):
    """Why MODULE of `name` ('MODULE:FUNCTION') cannot be found, without importing it (so without TensorFlow: the
    usage errors come before it loads), or None. FUNCTION is checked when the learner is built (`resolve`)."""
    import importlib.util
    module_name, _, function_name = name.partition(':')
    if not module_name or not function_name:
        return (f'unknown --network={name!r}; use default, {", ".join(BUILTIN)} or MODULE:FUNCTION '
                f'(a function (input_shape, num_outputs) -> keras.Model in MODULE.py)')
    try:
        with _working_directory_on_path():
            spec = importlib.util.find_spec(module_name)
    except Exception as e:   # a parent package that does not import
        spec, module_name = None, f'{module_name} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""})'
    if spec is None:
        return (f'--network={name}: cannot import {module_name}; put {name.partition(":")[0]}.py in the working '
                f'directory or on PYTHONPATH')
    return None


def problem(config):
    """Why `config.network` cannot run with the rest of `config` (one line), or None."""
    name = config.network
    if is_default(name):
        return None
    if name not in BUILTIN and name not in REGISTERED:
        why = _module_problem(name)
        if why:
            return why
    if name in IMAGE_ONLY and config_lib.regression(config):
        return f'--network={name} is a convolutional network for images; use --network=fc for regression tasks'
    if config.protocol == 'reptile':
        return ('--protocol=reptile runs openai/supervised-reptile\'s own network; drop --network or use '
                '--protocol=maml')
    if config.distribute != 'none' and config.method in ('protonet', 'matchingnet', 'baseline', 'baseline_pp'):
        return (f'--distribute splits {config.method}\'s rows over the replicas with batch statistics synced by the '
                f'paper\'s Conv-4 (a Keras model\'s batch norm cannot sync them); drop --distribute or --network')
    for flag, value, default in (('precision', config.precision, 'float32'), ('remat', config.remat, False),
                                 ('per_step_bn_stats', config.per_step_bn_stats, False),
                                 ('tf1_checkpoint', config.tf1_checkpoint, ''), ('export_tf1', config.export_tf1, '')):
        if value != default:
            return (f'--{flag} works with the paper\'s functional networks only, not with --network={name}; drop '
                    f'--{flag} or --network')
    return None


def input_shape(config, dim_input):
    """One example's shape as the network sees it: (dim_input,) for regression tasks, (H, W, C) for images (square,
    C = config.image_channels: the flattened rows the data generator yields)."""
    if config_lib.regression(config):
        return (dim_input,)
    channels = config_lib.image_channels(config)
    size = int(round((dim_input / channels) ** 0.5))
    return (size, size, channels)


def function(config, classification=True):
    """`f(input_shape, num_outputs) -> keras.Model` for `config.network`: a built-in set up from the flags
    (--num_filters, --norm, --max_pool, the data source), or the user's MODULE:FUNCTION."""
    from networks import builtin, resnet12
    name = config.network
    if name == 'conv4':
        return lambda shape, n: builtin.conv4(shape, n, config.num_filters, config.norm, config.max_pool,
                                              flatten=config.datasource == 'miniimagenet')
    if name == 'fc':
        hidden = (256, 128, 64, 64) if classification else (40, 40)
        return lambda shape, n: builtin.fc(shape, n, hidden, config.norm)
    if name == 'resnet12':
        return resnet12.resnet12
    if name == 'resnet12_gap':
        return lambda shape, n: resnet12.resnet12(shape, n, avg_pool=True)
    if name in REGISTERED:
        return REGISTERED[name]
    return resolve(name)


def build(config, dim_input, num_outputs):
    """The KerasNetwork of `config.network` for inputs of `dim_input` flattened values and `num_outputs` outputs
    (None: the embedding / backbone of the metric learners and baselines). Raises ValueError (one line)."""
    from networks import keras_net
    f = function(config, classification=not config_lib.regression(config))
    shape = input_shape(config, dim_input)
    model = keras_net.build_model(f, shape, num_outputs, config.seed)
    net = keras_net.KerasNetwork(model, shape)
    if num_outputs is not None and net.output_size != num_outputs:
        raise ValueError(f'--network={config.network} gives {net.output_size} outputs per example, the learner '
                         f'needs num_outputs={num_outputs}')
    return net


def learner_class(config, base):
    """The learner class running `base` on `config.network` (base for the default network)."""
    if is_default(config.network):
        return base
    from networks import learners
    return learners.keras_class(base)
