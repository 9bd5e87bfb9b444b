"""The run configuration: one frozen object holding every flag of the original plus ours.

`main.py` is the only module that parses flags; it turns them into a `Config` and hands
that down. Everything else reads fields from it, so every class is testable without absl.
Defaults live here once; `main.py` reads them from `Config()` when defining its flags.
"""
import dataclasses

DATASOURCES = ('sinusoid', 'omniglot', 'miniimagenet')
NORMS = ('batch_norm', 'layer_norm', 'None')
BASELINES = (None, 'oracle')


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
    seed: int = -1                       # -1: unseeded, as the original; >= 0: reproducible run
    data_dir: str = ''                   # where the Omniglot / MiniImagenet files are
    num_query: int = -1                  # query examples per class; -1: the original's choice
    num_train_classes: int = -1          # Omniglot split sizes; -1: the original 1100 / 100 / rest
    num_val_classes: int = -1
    tf1_checkpoint: str = ''             # a checkpoint of the original TF1 code to test or train from
    export_tf1: str = ''                 # write the weights as a TF1 checkpoint here (a prefix) at the end

    def replace(self, **changes):
        """Returns a copy with `changes` applied (the config itself never mutates)."""
        return dataclasses.replace(self, **changes)


def test_num_updates(config):
    """Inner steps the model unrolls: the original main() chose them per datasource and mode."""
    if config.datasource == 'sinusoid':
        return 5 if config.train else 10
    if config.datasource == 'miniimagenet':
        return 1 if config.train else 10
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
    return s
