"""A trained run as a servable few-shot classifier: a SavedModel with one signature,

    adapt_and_predict(support_images, support_labels, query_images) -> logits

    python scripts/export.py <the run's main.py flags> --out DIR [--test_iter=N]

which runs the learner's own test-time procedure on one task: MAML and its variants adapt with their inner
steps (as many as the run's test: max(10, --num_updates) on Omniglot), Reptile with its evaluation Adam steps,
ProtoNets and Matching Networks compare with the support set, the baselines fine-tune a new head. Inputs are
images as a caller has them: support_images [N*K, H, W, C] and query_images [N*Q, H, W, C] float32 in [0, 1]
(black 0, white 1) at the training's size, support_labels [N*K] int32 in 0..N-1; logits [N*Q, N]. The data
source's own preprocessing (Omniglot's inversion, 1 - x) happens inside. N, K, Q and the image size are the
run's: --num_classes, --update_batch_size and the test's query examples per class (--num_query, else K); export
again with other flags for other shapes (one compiled program per shape, as the evaluation).

The SavedModel needs TensorFlow only: `tf.saved_model.load(DIR).adapt_and_predict(...)` in a process that
imports nothing of this repository gives the logits main.py's test computes on the same task (tests/test_export.py).
"""
import dataclasses
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import config as config_lib  # noqa: E402
import main  # noqa: E402
from infra.checks import UsageError  # noqa: E402

SIGNATURE = 'adapt_and_predict'


def image_shape(config, dim_input=None):
    """(H, W, C) of the run's images (a user's data: C from --channels or the images, H = W from the learner's
    input width `dim_input`)."""
    if config_lib.regression(config):
        raise UsageError(f'--datasource={config.datasource}: export writes image classifiers; use an image data '
                         f'source (omniglot, miniimagenet, folder, tfds:NAME)')
    if config.datasource == 'omniglot':
        return 28, 28, 1
    if config.datasource == 'miniimagenet':
        return 84, 84, 3
    c = config_lib.image_channels(config)
    size = config.img_size if dim_input is None else int(round((dim_input / c) ** 0.5))
    return size, size, c


def to_inputs(images, config):
    """The learner's input rows [n, H*W*C] of caller images [n, H, W, C] in [0, 1]: the data pipeline's pixels
    (Omniglot with MAML's protocol: 1 - x, the original's inversion; otherwise x, as a folder's or TFDS's v / 255)."""
    import tensorflow as tf
    x = tf.reshape(images, [tf.shape(images)[0], -1])
    if config.datasource == 'omniglot' and config.protocol == 'maml':
        x = 1.0 - x
    return x


def query_per_class(config):
    """Query examples per class of the run's test tasks."""
    from data_generator import num_samples_per_class
    return num_samples_per_class(config) - config.update_batch_size


def classifier(experiment):
    """A tf.Module holding the learner's variables, with `adapt_and_predict` traced for the run's test shapes."""
    import tensorflow as tf
    rc, model = experiment.run_config, experiment.model
    n, k, q = rc.num_classes, rc.update_batch_size, query_per_class(rc)
    h, w, c = image_shape(rc, model.dim_input)

    def adapt_and_predict(support_images, support_labels, query_images):
        inputa = to_inputs(support_images, rc)[None]
        labela = tf.one_hot(support_labels, n, dtype=tf.float32)[None]
        inputb = to_inputs(query_images, rc)[None]
        labelb = tf.zeros([1, n * q, n], tf.float32)   # the query labels are unknown; no logit depends on them
        return model.evaluate(inputa, labela, inputb, labelb).outputbs[-1][0]

    module = tf.Module()
    module.learner = model
    module.adapt_and_predict = tf.function(adapt_and_predict, input_signature=[
        tf.TensorSpec([n * k, h, w, c], tf.float32, name='support_images'),
        tf.TensorSpec([n * k], tf.int32, name='support_labels'),
        tf.TensorSpec([n * q, h, w, c], tf.float32, name='query_images')])
    return module


def export(experiment, out):
    """Writes the SavedModel and `<out>/maml_tf2.json` (what it is: checkpoint, flags, shapes) into a temporary
    folder beside `out`, then renames it into place (nothing half-written); returns out."""
    import shutil
    import tensorflow as tf
    rc = experiment.run_config
    module = classifier(experiment)
    n, k, q = rc.num_classes, rc.update_batch_size, query_per_class(rc)
    shape = image_shape(rc, experiment.model.dim_input)
    info = {'signature': SIGNATURE, 'checkpoint': experiment.restored_from, 'iterations_trained': experiment.start_itr,
            'method': rc.method, 'datasource': rc.datasource, 'ways': n, 'support_shape': [n * k, *shape],
            'query_shape': [n * q, *shape], 'logits_shape': [n * q, n],
            'config': dataclasses.asdict(experiment.config)}
    tmp = f'{out.rstrip(os.sep)}.tmp{os.getpid()}'
    try:
        tf.saved_model.save(module, tmp, signatures={SIGNATURE: module.adapt_and_predict.get_concrete_function()})
        with open(os.path.join(tmp, 'maml_tf2.json'), 'w') as f:
            json.dump(info, f, indent=1)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def parse_args(argv):
    """(config, explicit flags, out) of the main.py flags `argv` plus --out=DIR; a bad flag is main.py's one-line
    error (exit 2)."""
    from absl import flags
    out = next((a.split('=', 1)[1] for a in argv if a.startswith('--out=')), None)
    values = flags.FlagValues()
    main.define_flags(values)
    try:
        values(['export.py', *[a for a in argv if not a.startswith('--out=')], '--train=False'])
    except flags.Error as e:
        main.fail(f'{e}; see python main.py --helpshort')
    if not out:
        main.fail('--out=DIR is missing; give the folder to write the SavedModel into')
    config, explicit = main.config_from_flags(values), main.explicit_flags(values)
    try:
        image_shape(config)
        main.check_config(config, explicit)
    except UsageError as e:
        main.fail(e, e.status)
    return config, explicit, out


def run(argv):
    """Exports the run main.py flags `argv` name (plus --out=DIR) and prints where it went."""
    config, explicit, out = parse_args(argv)
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        main.fail(f'--out={out} exists and is not an empty folder; choose a new folder')
    main.import_tensorflow()
    import data_generator
    try:
        experiment = main.prepare(config, explicit)
    except UsageError as e:
        main.fail(e, e.status)
    except data_generator.DataError as e:
        main.fail(e)
    export(experiment, out)
    print(f'[maml-tf2] wrote {out}: SavedModel with {SIGNATURE}(support_images, support_labels, query_images) -> '
          f'logits, from {experiment.restored_from} ({experiment.start_itr} iterations trained)')


if __name__ == '__main__':
    run(sys.argv[1:])
