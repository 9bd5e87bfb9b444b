"""The learners beside MAML (maml.py, at the root as in the original). Each module holds one method and plugs
into main.py's loop through the interface docs/ARCHITECTURE.md describes; config.METHODS maps --method to
'module:Class', and `learner_class` resolves it."""
import importlib

import config as config_lib


def learner_class(config):
    """The learner class that `config.method` trains and tests; `--method=maml` with a MAML++ switch on is
    mamlpp's subclass, so that plain MAML keeps its compiled step; `--network` other than the default: the class
    that runs it on that Keras model (networks.learner_class)."""
    import networks
    if config.method == 'maml':
        from learners import mamlpp
        return networks.learner_class(config, mamlpp.learner_class(config))
    module, name = config_lib.METHODS[config.method].split(':')
    return networks.learner_class(config, getattr(importlib.import_module(module), name))
