"""The run configuration: one frozen object holding every flag of the original plus ours.

`main.py` is the only module that parses flags; it turns them into a `Config` and hands
that down. Everything else reads fields from it, so every class is testable without absl.
Defaults live here once; `main.py` reads them from `Config()` when defining its flags.
"""
import dataclasses

DATASOURCES = ('sinusoid', 'omniglot', 'miniimagenet', 'folder')
# plus 'tfds:NAME' (a TensorFlow Datasets image-classification set) and 'MODULE:FUNCTION' (a Python task sampler):
# see datasource_kind
NORMS = ('batch_norm', 'layer_norm', 'None')
BASELINES = (None, 'oracle')
# --method: name -> 'module:Class' of the learner (all share main.py's train()/test(); see README "Architecture")
METHODS = {
    'maml': 'maml:MAML',
    'reptile': 'learners.reptile:Reptile',
    'protonet': 'learners.protonet:ProtoNet',
    'matchingnet': 'learners.matchingnet:MatchingNet',
    'baseline': 'learners.baseline:Baseline',
    'baseline_pp': 'learners.baseline:BaselinePP',
    'metasgd': 'learners.metasgd:MetaSGD',
    'anil': 'learners.anil:ANIL',
}
PROTOCOLS = ('maml', 'reptile')
INNER_LOOP = ('maml', 'metasgd', 'anil')          # the learners the MAML++ switches apply to
DISTRIBUTE = ('none', 'mirrored', 'multi_worker')
PRECISIONS = ('float32', 'bfloat16', 'float16')
TEST_BN = ('running', 'episode')                  # --test_bn: batch norm at test time (metric learners, baselines)


def _data_flag(default, help):
    """A data-source field that main.py turns into a flag, for every method. Unlike a learner's _flag it does not
    extend the experiment name by its value (a path would make folders): exp_string adds data_tag instead."""
    return dataclasses.field(default=default, metadata={'help': help, 'methods': None, 'data': True})


def datasource_kind(datasource):
    """'sinusoid' | 'omniglot' | 'miniimagenet' | 'folder' | 'tfds' | 'python' (MODULE:FUNCTION), or None for a
    value that names none of them."""
    if datasource in DATASOURCES:
        return datasource
    if datasource.startswith('tfds:') and len(datasource) > 5:
        return 'tfds'
    module, sep, function = datasource.partition(':')
    if sep and function.isidentifier() and all(p.isidentifier() for p in module.split('.')):
        return 'python'
    return None


def regression(config):
    """Whether the tasks are regression (MSE, fully connected net, main.py's sinusoid path): the sinusoid and a
    user's Python task family (--datasource=MODULE:FUNCTION); the rest classify images."""
    return datasource_kind(config.datasource) in ('sinusoid', 'python')


def image_channels(config):
    """Channels of the images the network sees: --channels when set (a user's data: main.py fills it from the
    images), else 3 for MiniImagenet, 1 for Omniglot."""
    if config.channels > 0:
        return config.channels
    return 3 if config.datasource == 'miniimagenet' else 1


_NEW = object()


def _flag(default, help, methods=None, before=_NEW):
    """A field that main.py turns into a flag (`help` is its help text). `methods`: the --method values it
    means something to (None: all); setting it explicitly for another method is a usage error. `before`: for a
    flag added with a default other than what its learner did until then, that earlier behaviour's value (the
    value of every checkpoint whose record lacks the field; see recorded_fields)."""
    metadata = {'help': help, 'methods': methods}
    if before is not _NEW:
        metadata['before'] = before
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Config:
    # ---- flags of the original main.py (same names, defaults and meaning) ----
    datasource: str = 'sinusoid'         # sinusoid or omniglot or miniimagenet
    num_classes: int = 5                 # N in N-way classification
    baseline: str | None = None          # 'oracle' (sinusoid only) or None
    pretrain_iterations: int = 0
    metatrain_iterations: int = 15000
    meta_batch_size: int = 25
    meta_lr: float = 0.001
    update_batch_size: int = 5           # K in K-shot
    update_lr: float = 1e-3              # alpha
    num_updates: int = 1                 # inner steps during training
    norm: str = 'batch_norm'             # batch_norm, layer_norm or None
    num_filters: int = 64
    conv: bool = True
    max_pool: bool = False
    stop_grad: bool = False
    log: bool = True
    logdir: str = '/tmp/data'
    resume: bool = True
    train: bool = True
    test_iter: int = -1
    test_set: bool = False
    train_update_batch_size: int = -1    # -1: same as update_batch_size
    train_update_lr: float = -1          # -1: same as update_lr
    # ---- new in maml-tf2 (none changes what an original flag means) ----
    xla: bool = True                     # compile the meta-train step with XLA (jit_compile)
    steps_per_execution: int = 1         # meta-iterations per compiled call (loop.py); same batches, same weights
    seed: int = -1                       # -1: unseeded, as the original; >= 0: reproducible run
    data_dir: str = ''                   # where the Omniglot / MiniImagenet files are
    num_query: int = -1                  # query examples per class; -1: the original's choice
    num_train_classes: int = -1          # Omniglot split sizes; -1: the original 1100 / 100 / rest
    num_val_classes: int = -1
    # ---- a user's data (datasources/folder.py, tfds.py, python.py; docs/DATA.md "Your own data") ----
    img_size: int = _data_flag(0, 'folder / tfds: resize every image to S x S; 0: keep the images\' size (all '
                               'must have the same square size)')
    channels: int = _data_flag(0, 'folder / tfds: 1 (grayscale) or 3 (RGB); 0: from the images (3 if any is in '
                               'color)')
    class_split: str = _data_flag('0.64,0.16,0.20', 'folder / tfds: train,val,test fractions of the classes, '
                                  'shuffled with a fixed seed, when the data has no train/ val/ test/ sub-folders '
                                  'and no --class_split_file')
    class_split_file: str = _data_flag('', 'folder / tfds: a JSON file {"train": [class, ...], "val": [...], '
                                       '"test": [...]} naming the classes of each split (e.g. CIFAR-FS over cifar100)')
    tfds_data_dir: str = _data_flag('', '--datasource=tfds:NAME: the TensorFlow Datasets data_dir holding the '
                                    'prepared NAME (default: TFDS\'s own, ~/tensorflow_datasets)')
    tf1_checkpoint: str = ''             # a checkpoint of the original TF1 code to test or train from
    export_tf1: str = ''                 # write the weights as a TF1 checkpoint here (a prefix) at the end
    # ---- scaling (issue 16; distribute.py): none of these changes the experiment name or the checkpoints ----
    cpu_devices: int = 1                 # split the CPU into N logical devices (tests tf.distribute without a GPU)
    distribute: str = 'none'             # none (one device), mirrored (local devices), multi_worker (processes, TF_CONFIG)
    remat: bool = False                  # recompute each inner step's activations in the backward pass (less memory)
    precision: str = 'float32'           # float32, bfloat16 or float16 network compute; float32 weights and meta-gradient
    loss_scale: float = 128.0            # --precision=float16: the inner and outer losses are multiplied by this before
                                         # differentiating (their gradients divided by it after)
    tf32: bool = False                   # let TensorFlow use TF32 for float32 products on Ampere+ GPUs
    xla_cache: bool = True               # TensorFlow's persistent XLA cache in <logdir>/.xla_cache (infra/compile_cache.py)
    # ---- learners beyond MAML: flags defined from these fields by main.py (help text in the metadata) ----
    network: str = _flag('', 'the network: \'\' or default (the paper\'s for the data source), conv4, fc, resnet12, '
                         'resnet12_gap (global average pooling) or MODULE:FUNCTION, a function (input_shape, '
                         'num_outputs) -> keras.Model importable from the working directory or PYTHONPATH '
                         '(docs/NETWORKS.md)')
    method: str = _flag('maml', 'the learner: ' + ', '.join(METHODS) + ' (maml: the faithful port of the original)')
    protocol: str = _flag('maml', 'maml: MAML\'s network, split and 600 fixed test tasks for every method; '
                          'learners.reptile: everything else as openai/supervised-reptile (Omniglot only)')
    # Reptile (openai/supervised-reptile flags; its --learning-rate is --update_lr, its --meta-batch --meta_batch_size,
    # its --classes/--shots are --num_classes/--update_batch_size, its --meta-iters --metatrain_iterations)
    inner_iters: int = _flag(20, 'Reptile: inner Adam steps per training task (its --inner-iters)', ('reptile',))
    inner_batch: int = _flag(5, 'Reptile: inner mini-batch size during training (its --inner-batch)', ('reptile',))
    train_shots: int = _flag(-1, 'Reptile: examples per class of a training task; -1: --update_batch_size '
                             '(its --train-shots)', ('reptile',))
    meta_step: float = _flag(0.1, 'Reptile: outer step size epsilon at the start (its --meta-step)', ('reptile',))
    meta_step_final: float = _flag(0.1, 'Reptile: outer step size at the end, linear in between '
                                   '(its --meta-step-final)', ('reptile',))
    eval_iters: int = _flag(50, 'Reptile: inner Adam steps at evaluation (its --eval-iters)', ('reptile',))
    eval_batch: int = _flag(5, 'Reptile: inner mini-batch size at evaluation (its --eval-batch)', ('reptile',))
    eval_samples: int = _flag(10000, 'Reptile with --protocol=reptile: test tasks (its --eval-samples)', ('reptile',))
    transductive: bool = _flag(False, 'Reptile: predict all queries in one batch (its --transductive)', ('reptile',))
    inner_sgd: bool = _flag(False, 'Reptile: plain gradient descent as the inner optimizer instead of Adam(beta1=0) '
                            '(its --sgd)', ('reptile',))
    # MAML++ (Antoniou et al. 2019): each change its own switch, all off by default
    multi_step_loss: bool = _flag(False, 'MAML++ MSL: query loss after every inner step, annealed weights',
                                  INNER_LOOP)
    multi_step_loss_epochs: int = _flag(10, 'MAML++ MSL: epochs over which the step weights anneal to the last '
                                        'step', INNER_LOOP)
    first_order_epochs: int = _flag(-1, 'MAML++ DA: first-order meta-gradient while epoch <= N (the released '
                                    'code\'s test), then second order; -1: off', INNER_LOOP)
    lslr: bool = _flag(False, 'MAML++ LSLR: learned inner learning rate per layer and step', INNER_LOOP)
    per_step_bn: bool = _flag(False, 'MAML++ BNWB: norm gamma and beta per inner step (batch norm gains a gamma)',
                              INNER_LOOP)
    per_step_bn_stats: bool = _flag(False, 'MAML++ BNRS as released: keep batch-norm running statistics per inner '
                                    'step (momentum 0.1) in the checkpoint; like the released code, never normalise '
                                    'with them (training and evaluation use batch statistics), so no output changes',
                                    INNER_LOOP)
    cosine_meta_lr: bool = _flag(False, 'MAML++ CA: cosine annealing of --meta_lr to --min_meta_lr over the run',
                                 INNER_LOOP)
    min_meta_lr: float = _flag(1e-5, 'MAML++ CA: the meta learning rate at the end', INNER_LOOP)
    iterations_per_epoch: int = _flag(500, 'MAML++: iterations per epoch (its schedules count epochs)', INNER_LOOP)
    # Prototypical / Matching Networks
    train_classes: int = _flag(-1, 'ways of the meta-training episodes; -1: --num_classes',
                               ('protonet', 'matchingnet'))
    lr_decay_every: int = _flag(2000, 'halve the Adam learning rate every this many meta-iterations (episodes '
                                'with --meta_batch_size=1, as the reference); 0: never', ('protonet', 'matchingnet'))
    fce: bool = _flag(False, 'Matching Networks: full-context embeddings', ('matchingnet',))
    distance: str = _flag('l2', 'Matching Networks: the attention\'s similarity: l2 (minus the squared Euclidean '
                          'distance, as oscarknagg/few-shot) or cosine (Vinyals et al., times --cosine_scale); '
                          'cosine was the only one, and the default, before 2026-12-07', ('matchingnet',),
                          before='cosine')
    cosine_scale: float = _flag(1.0, 'Matching Networks with --distance=cosine: the cosine times this (1: Vinyals\' '
                                'plain cosine; CloserLookFewShot: 100); with --learn_cosine_scale its initial value',
                                ('matchingnet',))
    learn_cosine_scale: bool = _flag(False, 'Matching Networks with --distance=cosine: train the scale with the '
                                     'embedding (Adam, the same learning rate)', ('matchingnet',))
    final_relu: bool = _flag(True, 'Matching Networks: keep the ReLU of the embedding\'s last block (features >= 0, '
                             'so a cosine lies in [0, 1]); False leaves it out', ('matchingnet',))
    test_bn: str = _flag('running', 'batch norm at test time: running (the references\' model.eval(): running '
                         'averages of the training batches) or episode (each episode\'s own statistics)',
                         ('protonet', 'matchingnet', 'baseline', 'baseline_pp'))
    # Fine-tuning baselines (Chen et al. 2019)
    batch_size: int = _flag(16, 'baseline pre-training: images per mini-batch', ('baseline', 'baseline_pp'))
    finetune_epochs: int = _flag(100, 'learners.baseline: epochs of the new head on a test task\'s support set',
                                 ('baseline', 'baseline_pp'))
    finetune_batch: int = _flag(4, 'learners.baseline: mini-batch of the new head\'s SGD', ('baseline', 'baseline_pp'))
    finetune_lr: float = _flag(0.01, 'learners.baseline: SGD learning rate of the new head (momentum 0.9, weight decay '
                               '1e-3)', ('baseline', 'baseline_pp'))

    def replace(self, **changes):
        """Returns a copy with `changes` applied (the config itself never mutates)."""
        return dataclasses.replace(self, **changes)


# The original's flags that mean something to some learners only (the rest mean something to all).
ORIGINAL_FLAG_METHODS = {
    'update_lr': INNER_LOOP + ('reptile',),
    'train_update_lr': INNER_LOOP,
    'num_updates': INNER_LOOP,
    'stop_grad': INNER_LOOP,
    'pretrain_iterations': ('maml',),
    'baseline': ('maml',),
    'tf1_checkpoint': ('maml',),
    'export_tf1': ('maml',),
}


def flag_methods(name):
    """The --method values the flag `name` means something to, or None for all."""
    field = {f.name: f for f in dataclasses.fields(Config)}[name]
    return field.metadata.get('methods', ORIGINAL_FLAG_METHODS.get(name))


def learner_fields(config):
    """[(name, value)] of the fields added for learners beyond MAML that the config's method uses and that are
    not at their default: they name the experiment (see exp_string)."""
    default = Config()
    return [(f.name, getattr(config, f.name)) for f in dataclasses.fields(Config)
            if 'help' in f.metadata and f.name not in ('method', 'protocol') and not f.metadata.get('data')
            and config.method in (f.metadata['methods'] or METHODS)
            and getattr(config, f.name) != getattr(default, f.name)
            and not (f.name == 'network' and config.network == 'default')]


def recorded_fields(config):
    """[(name, value)] of the config's method's fields that have a `before` value (a default that changed what
    the learner does): a checkpoint's regime records them at any value, so that one written before they existed,
    whose regime lacks them, is compared as trained with their `before` values (main.regime_differences)."""
    return [(f.name, getattr(config, f.name)) for f in dataclasses.fields(Config)
            if 'before' in f.metadata and config.method in (f.metadata['methods'] or METHODS)]


def value_before(name):
    """The value of field `name` in a checkpoint record written before the field existed: its `before`, else its
    default (None for a name that is no field)."""
    field = {f.name: f for f in dataclasses.fields(Config)}.get(name)
    if field is None:
        return None
    return field.metadata['before'] if 'before' in field.metadata else field.default


def test_num_updates(config):
    """Inner steps the model unrolls: the original main() chose them per datasource and mode."""
    if config.datasource == 'sinusoid':
        return 5 if config.train else 10
    if config.datasource == 'miniimagenet':
        return 1 if config.train else 10
    if datasource_kind(config.datasource) == 'python':   # a user's regression family: as the sinusoid
        return 5 if config.train else 10
    return 10


def resolved(config):
    """Returns `config` with the original's -1 sentinels filled in (train_update_* from update_*)."""
    changes = {}
    if config.train_update_batch_size == -1:
        changes['train_update_batch_size'] = config.update_batch_size
    if config.train_update_lr == -1:
        changes['train_update_lr'] = config.update_lr
    return config.replace(**changes)


def exp_string(config):
    """The original's experiment name, the sub-directory of `logdir` for summaries and checkpoints."""
    config = resolved(config)
    s = ('cls_' + str(config.num_classes) + '.mbs_' + str(config.meta_batch_size)
         + '.ubs_' + str(config.train_update_batch_size) + '.numstep' + str(config.num_updates)
         + '.updatelr' + str(config.train_update_lr))
    if config.num_filters != 64:
        s += 'hidden' + str(config.num_filters)
    if config.max_pool:
        s += 'maxpool'
    if config.stop_grad:
        s += 'stopgrad'
    if config.baseline:
        s += config.baseline
    s += {'batch_norm': 'batchnorm', 'layer_norm': 'layernorm', 'None': 'nonorm'}.get(config.norm, '')
    # maml-tf2: the other learners and their settings extend the name, so no two of them share a folder;
    # MAML without them keeps the original's name.
    if config.method != 'maml':
        s += '.' + config.method
    if config.protocol != 'maml':
        s += '.protocol_' + config.protocol
    for name, value in learner_fields(config):
        s += '.' + name + ('' if value is True else str(value).replace(':', '-').replace('/', '-'))
    return s + data_tag(config)


def data_tag(config):
    """'' for the built-in data sources (their names are the original's); for a user's data '.folder_BASENAME-HASH',
    '.tfds_NAME-HASH' or '.py_MODULE.FUNCTION-HASH', HASH the first 8 hex digits of a SHA-256 over the data's
    absolute path and the data flags, so that two datasets (or two sizes of one) never share a run folder."""
    import hashlib
    import json
    import os
    kind = datasource_kind(config.datasource)
    if kind not in ('folder', 'tfds', 'python'):
        return ''
    if kind == 'folder':
        path = os.path.abspath(os.path.expanduser(config.data_dir or '.'))
        name = 'folder_' + (os.path.basename(path.rstrip(os.sep)) or 'root')
    elif kind == 'tfds':
        path = os.path.abspath(os.path.expanduser(config.tfds_data_dir)) if config.tfds_data_dir else ''
        name = 'tfds_' + config.datasource[5:].replace('/', '_').replace(':', '_')
    else:
        path, name = '', 'py_' + config.datasource.replace(':', '.')
    split_file = os.path.abspath(os.path.expanduser(config.class_split_file)) if config.class_split_file else ''
    blob = json.dumps([config.datasource, path, config.img_size, config.channels, config.class_split, split_file])
    return '.' + name + '-' + hashlib.sha256(blob.encode()).hexdigest()[:8]


def run_config(config):
    """The config the model and data use, with the original main()'s derived values.

    `--baseline=oracle` moves the meta-training iterations into pretraining; testing uses a meta
    batch of 1. (`exp_string` is always taken from `config` itself, as the original named the
    experiment with the training meta batch size.)
    """
    if config.baseline == 'oracle':
        config = config.replace(pretrain_iterations=config.pretrain_iterations + config.metatrain_iterations,
                                metatrain_iterations=0)
    if not config.train:
        config = config.replace(meta_batch_size=1)
    return config
