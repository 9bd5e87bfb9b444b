"""Task data for MAML: sinusoid regression, Omniglot and MiniImagenet few-shot classification.

A TensorFlow 2 port of the original `data_generator.py` (cbfinn/maml). The maths of a task is the
original's; what changed (see docs/DATA.md):

* Omniglot characters are listed in sorted order (`os.listdir` order differs between machines)
  before the original's `random.seed(1); random.shuffle(...)` split into 1100 / 100 / rest.
* All Omniglot images are decoded once into a uint8 array (cached as a `.npz` in the per-user
  cache folder, see cache_dir) and tasks are sampled from it with vectorised, stateless TensorFlow
  ops inside tf.data, instead of a queue of 200,000 tasks' file names.
* The training stream is endless and fresh (the original cycled 200,000 pre-drawn tasks); it is
  reproducible given `config.seed` and its position can be checkpointed (`get_state`/`set_state`).
* The 600 evaluation tasks (including their rotations) are drawn once from their own fixed seed,
  so they are the same on every call and every run.

Data modes of the learners beyond MAML (docs/DATA.md, "Data modes of the other learners"):
config.train_classes ways for the meta-train episodes (num_classes_for / samples_per_class_for);
make_class_batches, an endless resumable stream of ordinary mini-batches of the meta-train images
(Baseline / Baseline++); config.protocol='reptile', the Omniglot split and task sampler of
openai/supervised-reptile (sample_mini_dataset, driven by the checkpointable random.Random py_rng).

Layout: each data source lives in the package datasources/ (sinusoid, omniglot, miniimagenet; episodes:
the stateless task sampler; common: DataError). This module keeps DataGenerator, which serves them to the
learners, and re-exports the names the single-module version had (data_generator.DataError,
data_generator.cache_dir, data_generator.OMNIGLOT_SPLIT_SEED, ...); setting one of them here sets it in
its datasources module too (_Module at the end).

Public interface (others code against these names):

    DataGenerator(num_samples_per_class, batch_size, config, train_samples_per_class=None), DataError,
    num_samples_per_class(config), cache_dir(); on a DataGenerator: make_data_tensor(train),
    num_classes_for(train), samples_per_class_for(train), make_class_batches(batch_size),
    num_train_classes_total, sample_mini_dataset(num_classes, num_shots, train), py_rng,
    get_state() / set_state(state)
"""
import logging
import os
import random
import sys
import types

import numpy as np

import config as config_lib
from datasources import episodes, folder, miniimagenet, omniglot, sinusoid
from datasources import python as python_tasks
# The names users and tests know from the original single module (re-exported, see _Module below)
from datasources.common import DataError, _visible_dirs  # noqa: F401
from datasources.episodes import (EVAL_SEED, IMAGES_PER_CLASS, NUM_EVAL_TASKS, check_sizes,  # noqa: F401
                                  sample_tasks)
from datasources.miniimagenet import (MINI_QUERY, MINI_SIZE, _MINI_HOW, _mini_split, _resize_uint8,  # noqa: F401
                                      find_miniimagenet)
from datasources.omniglot import (CACHE_ENV, CACHE_VERSION, OMNIGLOT_NUM_TRAIN, OMNIGLOT_NUM_VAL,  # noqa: F401
                                  OMNIGLOT_SIZE, OMNIGLOT_SPLIT_SEED, _GET_ZIPS, _OFFICIAL, _SMALL, _OmniglotData,
                                  _build_data, _cache_dirs, _cache_name, _decode_png, _fingerprint,
                                  _is_tree, _load_files, _load_tfds, _official_characters, _official_parts,
                                  _online, _read_cache, _stat_key, _tree_characters, _writable, _write_cache,
                                  cache_dir, find_omniglot, load_omniglot, omniglot_pixels)
from datasources.sinusoid import generate_sinusoid_batch

log = logging.getLogger(__name__)

REPTILE_NUM_TRAIN = 1200      # supervised-reptile split_dataset(num_train=1200)
REPTILE_DEFAULT_SEED = 0      # supervised-reptile --seed default


def with_image_shape(config, data_generator):
    """`config` with --img_size and --channels set to the data's (a user's images: from the images when 0), so
    that the learners build their network for them; the built-in sources' configs come back unchanged."""
    if getattr(data_generator, 'class_split', None) is None:
        return config
    return config.replace(img_size=int(data_generator.img_size[0]), channels=int(data_generator.channels))


def num_samples_per_class(config):
    """S, the examples per class (per task for sinusoid) main.py passes to DataGenerator.

    The original: 2K for sinusoid and Omniglot and for MiniImagenet at test time, K + 15 for
    MiniImagenet training. config.num_query >= 0 sets the query part instead: S = K + num_query.
    """
    k = config.update_batch_size
    if config.num_query >= 0:
        return k + config.num_query
    if config.datasource == 'miniimagenet' and config.train:
        return k + MINI_QUERY
    return 2 * k



# ----------------------------------------------------------------------------------------------
# The generator
# ----------------------------------------------------------------------------------------------

class DataGenerator:
    """Sinusoid (or a user's Python task family) batches (numpy), or image meta-batches (tf.data) of Omniglot,
    MiniImagenet or a user's folder / TFDS images."""

    def __init__(self, num_samples_per_class, batch_size, config, train_samples_per_class=None, run_dir=None):
        """num_samples_per_class: S of every pipeline; train_samples_per_class: S of the meta-train
        episodes only, when they differ (e.g. ProtoNets' training query size), default S.
        config.train_classes > 0 sets the ways of the meta-train episodes (default num_classes);
        config.protocol='reptile' builds the Reptile Omniglot split (sample_mini_dataset).
        run_dir: the run folder (logdir/exp_string) for a user's data (folder, tfds): its class_split.json,
        when there, gives the classes (a test uses the training's); the training writes it when it starts."""
        self.config = config
        self.run_dir = run_dir
        self.in_memory = False     # the images are one uint8 array (Omniglot, folder, tfds), not JPEG paths
        self.datasource = config.datasource
        self.protocol = getattr(config, 'protocol', 'maml')
        self.batch_size = int(batch_size)
        self.num_samples_per_class = int(num_samples_per_class)
        self.train_samples_per_class = int(num_samples_per_class if train_samples_per_class is None
                                           else train_samples_per_class)
        self.num_classes = 1
        self.train_num_classes = 1
        if self.batch_size < 1 or min(self.num_samples_per_class, self.train_samples_per_class) < 1:
            raise DataError(f'need batch_size >= 1 and samples per class >= 1, got {batch_size}, '
                            f'{num_samples_per_class}: check --meta_batch_size / --update_batch_size')
        if self.protocol not in ('maml', 'reptile'):
            raise DataError(f'unknown --protocol={self.protocol!r}: use maml or reptile')
        self.rng = np.random.RandomState(config.seed) if config.seed >= 0 else np.random.RandomState()
        self._train_key = None     # seed of the training stream, drawn from self.rng when first needed
        self._train_next = 0       # index of the next training meta-batch to deliver
        self._vars = None          # tf.Variables mirroring the two above once a stream exists
        self._eval = None
        self._tf = None
        self._class_next = 0       # examples of the non-episodic stream delivered (make_class_batches)
        self._class_vars = None
        self._class_table = None
        if self.datasource == 'sinusoid':
            self.amp_range = list(sinusoid.AMP_RANGE)
            self.phase_range = list(sinusoid.PHASE_RANGE)
            self.input_range = list(sinusoid.INPUT_RANGE)
            self.dim_input = 1
            self.dim_output = 1
        elif self.datasource in IMAGES_PER_CLASS:
            # before any data is read, so an impossible size fails fast
            for s in {self.num_samples_per_class, self.train_samples_per_class}:
                check_sizes(self.datasource, s, getattr(config, 'update_batch_size', 0))
            if self.datasource == 'omniglot':
                self._init_omniglot(config)
            else:
                self._init_miniimagenet(config)
        elif config_lib.datasource_kind(self.datasource) in ('folder', 'tfds'):
            self._init_images(config)
        elif config_lib.datasource_kind(self.datasource) == 'python':   # datasources/python.py
            self.sampler = python_tasks.load_sampler(self.datasource)
            self.dim_input, self.dim_output = python_tasks.probe(self.sampler, self.datasource,
                                                                 self.num_samples_per_class)
        else:
            raise DataError(f'unknown --datasource={self.datasource!r}: use sinusoid, omniglot, miniimagenet, '
                            f'folder or tfds:NAME')

    def _set_ways(self, config):
        """Sets num_classes (N of the evaluation tasks) and train_num_classes (N of the meta-training tasks:
        --train_classes where a learner has it, else N); returns N."""
        n = self.num_classes = config.num_classes
        ways = getattr(config, 'train_classes', -1)
        self.train_num_classes = ways if ways is not None and ways > 0 else n
        return n

    # ---- Omniglot ----
    def _init_omniglot(self, config):
        n = self._set_ways(config)
        self.img_size = OMNIGLOT_SIZE
        self.dim_input = int(np.prod(self.img_size))
        self.dim_output = n
        self.rotate = True
        self.in_memory = True
        self.data = data = load_omniglot(config.data_dir)
        grid = np.arange(self.dim_input).reshape(self.img_size)
        # rot90(img, k).ravel() == img.ravel()[rot_index[k]]: k quarter turns counter-clockwise,
        # as np.rot90 and tf.image.rot90
        self.rot_index = np.stack([np.rot90(grid, k).ravel() for k in range(4)]).astype(np.int64)
        if self.protocol == 'reptile':
            return self._init_reptile_split(config)
        order = list(range(len(data.names)))       # sorted (alphabet, character) order
        random.Random(OMNIGLOT_SPLIT_SEED).shuffle(order)
        n_train = config.num_train_classes if config.num_train_classes >= 0 else OMNIGLOT_NUM_TRAIN
        n_val = config.num_val_classes if config.num_val_classes >= 0 else OMNIGLOT_NUM_VAL
        need = n_train + n_val + (n if config.test_set else 0)
        if len(order) < need:
            raise DataError(
                f'Omniglot has {len(order)} characters but the split needs {need} ({n_train} train + {n_val} '
                f'val{f" + {n} test" if config.test_set else ""}): give both images_background and '
                f'images_evaluation, or pass smaller --num_train_classes/--num_val_classes')
        self._train_classes = np.array(order[:n_train], np.int64)
        self._val_classes = np.array(order[n_train:n_train + n_val], np.int64)
        self._test_classes = np.array(order[n_train + n_val:], np.int64)
        self._eval_classes = self._test_classes if config.test_set else self._val_classes
        self._set_counts(data.offsets, data.names)
        self.metatrain_character_folders = [data.names[i] for i in self._train_classes]
        self.metaval_character_folders = [data.names[i] for i in self._eval_classes]
        # pixel value v -> 1 - v/255 in float32, the original's cast, /255 and inversion
        self.pixel_lut = np.float32(1.0) - np.arange(256, dtype=np.float32) / np.float32(255.0)

    # ---- Omniglot, the Reptile protocol (openai/supervised-reptile omniglot.py) ----
    def _init_reptile_split(self, config):
        """The Reptile split: the characters in sorted (alphabet, character) order, shuffled by Python's
        random.Random(seed) (the reference's random.seed(--seed) then split_dataset); the first 1200
        are meta-train, augmented to 4 classes each (rotations 0/90/180/270, augment_dataset order),
        the other 423 are test classes, unrotated. py_rng continues from there, as the reference's
        global `random` does: sample_mini_dataset draws from it, and so should the learner's
        mini-batching, to reproduce the reference's draws."""
        data = self.data
        seed = config.seed if config.seed >= 0 else REPTILE_DEFAULT_SEED
        self.py_rng = random.Random(seed)
        order = list(range(len(data.names)))
        self.py_rng.shuffle(order)
        n_train = config.num_train_classes if config.num_train_classes >= 0 else REPTILE_NUM_TRAIN
        if len(order) <= n_train:
            raise DataError(f'the Reptile split needs more than {n_train} Omniglot characters, found {len(order)}: '
                            f'give both images_background and images_evaluation, or pass a smaller '
                            f'--num_train_classes')
        self._train_classes = np.array(order[:n_train], np.int64)
        self._eval_classes = self._test_classes = np.array(order[n_train:], np.int64)
        self._val_classes = self._eval_classes[:0]
        # (character, quarter turns) of each class, in the reference's order
        self.reptile_train = [(c, k) for c in self._train_classes.tolist() for k in range(4)]
        self.reptile_test = [(c, 0) for c in self._test_classes.tolist()]
        # each character's image rows in the order its files are listed before random.shuffle (the
        # reference's os.listdir order, which depends on the filesystem; sorted here, see DATA.md)
        self.listing = {c: np.arange(data.offsets[c], data.offsets[c + 1], dtype=np.int64)
                        for c in range(len(data.names))}
        self._set_counts(data.offsets, data.names)
        self.metatrain_character_folders = [data.names[i] for i in self._train_classes]
        self.metaval_character_folders = [data.names[i] for i in self._eval_classes]
        # pixel value v -> v/255 in float32: the reference's 1-bit image as float32, background 1
        self.pixel_lut = np.arange(256, dtype=np.float32) / np.float32(255.0)

    def set_listing_order(self, name, files):
        """Sets the order in which character `name`'s files are listed before the reference's
        random.shuffle (files: its file names, e.g. a machine's os.listdir order)."""
        c = self.data.names.index(name)
        self.listing[c] = np.array([self.data.index(name, f) for f in files], np.int64)

    def sample_mini_dataset_indices(self, num_classes, num_shots, train=True):
        """The reference's _sample_mini_dataset as indices: (image rows [N*shots] int64, quarter turns
        [N*shots] int64, labels [N*shots] int32), class by class.

        Draws from py_rng exactly as the reference draws from `random`: one shuffle of the whole
        class list (the train classes with rotations, or the test classes), then, for each of the
        first num_classes classes, one shuffle of its files, taking the first num_shots. Labels are
        0..N-1 in the shuffled class order.
        """
        if self.protocol != 'reptile':
            raise DataError('sample_mini_dataset() serves --protocol=reptile; use make_data_tensor() for maml')
        classes = list(self.reptile_train if train else self.reptile_test)
        if not 1 <= num_classes <= len(classes):
            raise DataError(f'{num_classes} classes asked of a split of {len(classes)}: use 1..{len(classes)} classes')
        if not 1 <= num_shots <= IMAGES_PER_CLASS['omniglot']:
            raise DataError(f'{num_shots} shots per class, but omniglot has only 20 drawings per character: '
                            f'use 1..20 shots (train shots + query)')
        self.py_rng.shuffle(classes)
        rows, rots, labels = [], [], []
        for label, (c, k) in enumerate(classes[:num_classes]):
            names = list(self.listing[c])
            self.py_rng.shuffle(names)
            if len(names) < num_shots:
                raise DataError(f'{self.data.names[c]} has {len(names)} images, fewer than {num_shots} shots: '
                                f'the data is incomplete, or use fewer shots')
            rows += names[:num_shots]
            rots += [k] * num_shots
            labels += [label] * num_shots
        return np.array(rows, np.int64), np.array(rots, np.int64), np.array(labels, np.int32)

    def sample_mini_dataset(self, num_classes, num_shots, train=True):
        """A Reptile task: (images [N*shots, 28, 28] float32 in {0, 1}, background 1, labels [N*shots]
        int32), class by class in the reference's order (see sample_mini_dataset_indices). The pixels
        are the reference's Image.open(p).resize((28, 28)).rotate(90*k) as float32."""
        rows, rots, labels = self.sample_mini_dataset_indices(num_classes, num_shots, train)
        return self.reptile_images(rows, rots), labels

    def reptile_images(self, rows, rots):
        """float32 [len(rows), 28, 28] of image rows turned by rots quarter turns counter-clockwise."""
        flat = self.data.images.reshape(len(self.data.images), -1)
        pix = flat[np.asarray(rows)[:, None], self.rot_index[np.asarray(rots)]]
        return self.pixel_lut[pix].reshape((-1,) + OMNIGLOT_SIZE)

    # ---- a user's images: --datasource=folder or tfds:NAME (datasources/folder.py, tfds.py) ----
    def _init_images(self, config):
        """Lists the classes, chooses the class split (folder.choose_split), checks it and decodes the images of
        the meta-train and evaluation classes into self.data (a folder.ImageSet [M, S, S, C]). Pixels are
        x / 255, never inverted or rotated."""
        if self.protocol != 'maml':
            raise DataError(f'--protocol={self.protocol} is implemented for omniglot only; use --protocol=maml')
        n = self._set_ways(config)
        self.dim_output = n
        self.rotate = False
        self.in_memory = True
        if config_lib.datasource_kind(self.datasource) == 'folder':
            listing, fixed = folder.list_folder(config.data_dir)
            what = os.path.expanduser(config.data_dir)
            names = sorted(listing)
            load = lambda use: folder.load_folder(listing, use, config, what)   # noqa: E731
            self._class_path = lambda name: os.path.join(what, name)
        else:
            from datasources import tfds as tfds_lib
            source = tfds_lib.TfdsSource(config)
            names, fixed, what = source.names, None, source.what
            load = lambda use: source.load(use, config)   # noqa: E731
            self._class_path = lambda name: f'class {name!r} of {what}'
        split, where = folder.choose_split(config, names, fixed, self.run_dir, what)
        eval_split = 'test' if config.test_set else 'val'
        folder.check_split(split, ('train', eval_split), where, what)
        self.class_split = split
        self._split_extra = {'datasource': self.datasource, 'data': what, 'from': where}
        self._split_written = False
        self.data = data = load(split['train'] + split[eval_split])
        size, channels = data.images.shape[1], data.images.shape[3]
        self.img_size, self.channels = (size, size), channels
        self.dim_input = size * size * channels
        self.rot_index = np.arange(self.dim_input, dtype=np.int64)[None]   # no rotations: quarter turns 0 only
        n_train = len(split['train'])
        self._train_classes = np.arange(n_train, dtype=np.int64)
        self._eval_classes = np.arange(n_train, len(data.names), dtype=np.int64)
        self._set_counts(data.offsets, data.names)
        self.metatrain_character_folders = [data.names[i] for i in self._train_classes]
        self.metaval_character_folders = [data.names[i] for i in self._eval_classes]
        self.pixel_lut = np.arange(256, dtype=np.float32) / np.float32(255.0)   # v -> v / 255

    def write_class_split(self):
        """Writes the class split into run_dir/class_split.json (atomically, once, and only for a user's data
        when training): a later test, or a resumed training, reads it back. Returns its path or None."""
        if getattr(self, 'class_split', None) is None or not self.run_dir or self._split_written \
                or not self.config.train:
            return None
        path = folder.write_split_file(self.run_dir, self.class_split, self._split_extra)
        self._split_written = True
        log.info('wrote the class split to %s', path)
        return path

    # ---- MiniImagenet ----
    def _init_miniimagenet(self, config):
        if self.protocol != 'maml':
            raise DataError(f'--protocol={self.protocol} is implemented for omniglot only; use --protocol=maml')
        n = self._set_ways(config)
        self.img_size = MINI_SIZE
        self.dim_input = int(np.prod(self.img_size)) * 3
        self.dim_output = n
        self.rotate = False
        kind, root = find_miniimagenet(config.data_dir)
        eval_split = 'test' if config.test_set else 'val'
        train = _mini_split(kind, root, 'train')
        evals = _mini_split(kind, root, eval_split)
        names, paths, offsets = [], [], [0]
        for name, files in train + evals:
            names.append(name)
            paths.extend(files)
            offsets.append(offsets[-1] + len(files))
        self.paths = paths
        self._train_classes = np.arange(len(train), dtype=np.int64)
        self._eval_classes = np.arange(len(train), len(names), dtype=np.int64)
        self._set_counts(np.array(offsets, np.int64), names)
        self.metatrain_character_folders = [names[i] for i in self._train_classes]
        self.metaval_character_folders = [names[i] for i in self._eval_classes]

    def _set_counts(self, offsets, names):
        self._offsets = np.asarray(offsets, np.int64)
        self._counts = np.diff(self._offsets)
        if self.num_classes < 1:
            raise DataError(f'--num_classes={self.num_classes} must be >= 1')
        for split, cls, n, s, flag in (
                ('meta-train', self._train_classes, self.train_num_classes, self.train_samples_per_class,
                 '--train_classes' if self.train_num_classes != self.num_classes else '--num_classes'),
                ('evaluation', self._eval_classes, self.num_classes, self.num_samples_per_class, '--num_classes')):
            if len(cls) < n:
                raise DataError(f'the {split} split has {len(cls)} classes, fewer than {flag}={n}: '
                                f'use fewer classes or give more data')
            short = [c for c in cls if self._counts[c] < s]
            if short and hasattr(self, '_class_path'):   # a user's data: name the folder
                q = s - getattr(self.config, 'update_batch_size', 0)
                raise DataError(f'{self._class_path(names[short[0]])} has {self._counts[short[0]]} images, fewer '
                                f'than the K + Q = {s} a task needs ({len(short)} {split} classes are short); '
                                f'add images, or lower --update_batch_size or --num_query (now {q} query)')
            if short:
                raise DataError(f'{len(short)} {split} classes have fewer than the {s} images a task needs '
                                f'(e.g. {names[short[0]]} has {self._counts[short[0]]}): the data is '
                                f'incomplete, or lower --update_batch_size/--num_query')
        if len(self._eval_classes) == self.num_classes:
            log.warning('the evaluation split has only %d classes, as many as --num_classes: every evaluation task '
                        'uses the same classes (only the images and their order differ)', self.num_classes)

    # ---- shapes of each pipeline ----
    def num_classes_for(self, train):
        """N, the ways of the episodes make_data_tensor(train) yields (labels are one-hot of width N):
        config.train_classes for meta-training when > 0 (e.g. ProtoNets' 60-way), else num_classes."""
        return self.train_num_classes if train else self.num_classes

    def samples_per_class_for(self, train):
        """S, the images per class of each episode make_data_tensor(train) yields."""
        return self.train_samples_per_class if train else self.num_samples_per_class

    # ---- random state ----
    def _ensure_train_key(self):
        if self._train_key is None:
            self._train_key = int(self.rng.randint(0, 2**31 - 1))
        return self._train_key

    def get_state(self):
        """All random state of the generator as a JSON-serialisable dict (see set_state).

        `rng` is self.rng's state; `train_key` seeds the training stream (drawn from self.rng when
        the first training dataset is made); `train_next` counts the training meta-batches delivered
        so far (the stream prefetches internally; only batches handed to the consumer count).
        `class_next` (once make_class_batches delivered something) counts the examples of the
        non-episodic stream delivered; `py_rng` (protocol 'reptile') is random.Random.getstate().
        """
        if not isinstance(self.rng, np.random.RandomState):
            raise TypeError('DataGenerator.rng must be a np.random.RandomState to be checkpointed')
        name, key, pos, has_gauss, gauss = self.rng.get_state()
        if self._vars is not None:
            self._train_next = int(self._vars[1].numpy())
        state = {'version': 1, 'rng': {'name': str(name), 'key': [int(v) for v in key], 'pos': int(pos),
                                       'has_gauss': int(has_gauss), 'cached_gaussian': float(gauss)},
                 'train_key': self._train_key, 'train_next': int(self._train_next)}
        if self._class_vars is not None:
            self._class_next = int(self._class_vars.numpy())
        if self._class_next:
            state['class_next'] = self._class_next
        if hasattr(self, 'py_rng'):
            version, internal, gauss_next = self.py_rng.getstate()
            state['py_rng'] = [version, list(internal), gauss_next]
        return state

    def set_state(self, state):
        """Restores a get_state() dict: the next draws and the next training meta-batch are the saved ones.

        Takes effect for iterators created afterwards (a running iterator keeps its position).
        """
        r = state['rng']
        rng = np.random.RandomState()
        rng.set_state((r['name'], np.array(r['key'], dtype=np.uint32), int(r['pos']), int(r['has_gauss']),
                       float(r['cached_gaussian'])))
        self.rng = rng
        self._train_key = None if state.get('train_key') is None else int(state['train_key'])
        self._train_next = int(state.get('train_next', 0))
        if self._vars is not None:
            self._vars[0].assign(self._ensure_train_key())
            self._vars[1].assign(self._train_next)
        self._class_next = int(state.get('class_next', 0))
        if self._class_vars is not None:
            self._class_vars.assign(self._class_next)
        if 'py_rng' in state and hasattr(self, 'py_rng'):
            version, internal, gauss_next = state['py_rng']
            self.py_rng.setstate((version, tuple(internal), gauss_next))

    # ---- sinusoid ----
    def generate(self, train=True, input_idx=None):
        """The original generate_sinusoid_batch, drawing from self.rng (datasources.sinusoid).

        Returns (init_inputs [B, S, 1], outputs [B, S, 1], amp [B], phase [B]), float64. `train` is
        unused (as in the original); `input_idx` replaces inputs from that index on by a linspace.
        """
        if hasattr(self, 'sampler'):   # a user's task family: no amplitude or phase (zeros)
            x, y = python_tasks.sample(self.sampler, self.datasource, self.rng, self.batch_size,
                                       self.num_samples_per_class)
            return x, y, np.zeros(self.batch_size), np.zeros(self.batch_size)
        if self.datasource != 'sinusoid':
            raise DataError(f'generate() is for --datasource=sinusoid; use make_data_tensor() for {self.datasource}')
        return generate_sinusoid_batch(self.rng, self.batch_size, self.num_samples_per_class, self.amp_range,
                                       self.phase_range, self.input_range, input_idx, self.dim_input,
                                       self.dim_output)

    generate_sinusoid_batch = generate

    # ---- task indices (TF) ----
    def _consts(self):
        """Constant tensors on the CPU, made once."""
        import tensorflow as tf
        if self._tf is None:
            with tf.device('/CPU:0'):
                c = {'eye': tf.eye(self.num_classes, dtype=tf.float32),
                     'eye_train': tf.eye(self.train_num_classes, dtype=tf.float32)}
                if self.in_memory:
                    c['pixels'] = tf.constant(self.data.images.reshape(-1))
                    c['rot_index'] = tf.constant(self.rot_index)
                    c['lut'] = tf.constant(self.pixel_lut)
                else:
                    c['paths'] = tf.constant(self.paths)
            self._tf = c
        return self._tf

    def _train_rows(self, key, j):
        import tensorflow as tf
        return sample_tasks(tf.stack([key, j]), self.batch_size, self._train_classes, self._counts,
                            self._offsets, self.train_num_classes, self.train_samples_per_class, self.rotate)[:3]

    def train_task_indices(self, j, key=None):
        """numpy (image row, label, rotation) [B, N*S] of training meta-batch j (key: the stream's seed)."""
        import tensorflow as tf
        key = self._ensure_train_key() if key is None else key
        with tf.device('/CPU:0'):
            rows = self._train_rows(tf.constant(key, tf.int64), tf.constant(j, tf.int64))
        return tuple(r.numpy() for r in rows)

    def eval_tasks(self):
        """numpy (image row, label, rotation) [600, N*S] and classes [600, N] of the fixed evaluation tasks."""
        import tensorflow as tf
        if self._eval is None:
            with tf.device('/CPU:0'):
                out = sample_tasks(tf.constant([EVAL_SEED, NUM_EVAL_TASKS], tf.int64), NUM_EVAL_TASKS,
                                   self._eval_classes, self._counts, self._offsets, self.num_classes,
                                   self.num_samples_per_class, self.rotate)
            self._eval = tuple(x.numpy() for x in out)
        return self._eval

    def _images(self, img, rot):
        """Omniglot pixels [B, R, 784] float32 of image rows [B, R] turned by rot [B, R] quarter turns."""
        import tensorflow as tf
        c = self._consts()
        idx = img[..., None] * self.dim_input + tf.gather(c['rot_index'], rot)
        return tf.gather(c['lut'], tf.cast(tf.gather(c['pixels'], idx), tf.int32))

    # ---- non-episodic mini-batches (Chen et al. 2019 Baseline / Baseline++ pre-training) ----
    def _class_examples(self):
        """numpy (image row, quarter turns, label) [E] of every meta-train example, and the class count.

        Omniglot, protocol 'maml': each meta-train character under each of the 4 rotations is its own
        class (label = 4 * position in metatrain_character_folders + quarter turns), as a rotated
        character is a class of its own in the episodic tasks; protocol 'reptile': the 4800 classes
        of reptile_train. MiniImagenet: the meta-train classes (64 on the Ravi split), unrotated.
        """
        if self._class_table is None:
            if self.protocol == 'reptile':
                classes = self.reptile_train
            else:
                turns = range(4) if self.rotate else (0,)
                classes = [(c, k) for c in self._train_classes.tolist() for k in turns]
            rows, rots, labels = [], [], []
            for label, (c, k) in enumerate(classes):
                r = np.arange(self._offsets[c], self._offsets[c + 1], dtype=np.int64)
                rows.append(r)
                rots.append(np.full(len(r), k, np.int64))
                labels.append(np.full(len(r), label, np.int64))
            self._class_table = (np.concatenate(rows), np.concatenate(rots), np.concatenate(labels), len(classes))
        return self._class_table

    @property
    def num_train_classes_total(self):
        """Classes of the non-episodic stream (the width of its one-hot labels): 4400 for Omniglot's
        1100 meta-train characters x 4 rotations, 4800 with --protocol=reptile, 64 for MiniImagenet, the
        meta-train classes of a user's folder / TFDS data."""
        if not hasattr(self, '_offsets'):
            raise DataError('make_class_batches() is for omniglot/miniimagenet')
        return self._class_examples()[3]

    def make_class_batches(self, batch_size):
        """tf.data.Dataset of ordinary mini-batches (images [batch_size, dim_input] float32, labels
        [batch_size, num_train_classes_total] float32 one-hot) of the meta-train images only.

        Endless: epoch e is a random permutation (stateless, seeded by train_key and e) of every
        meta-train example, so each epoch shows each example once; batches run on across epoch
        boundaries. Pixels are the episodic pipeline's (Omniglot: 1 - x/255 and the class's
        rotation; Reptile protocol: x/255). Like the training stream it is resumable: an iterator
        starts at the generator's position (get_state()['class_next'] examples delivered), and
        only batches handed to the consumer advance it. Call it eagerly.
        """
        import tensorflow as tf
        batch_size = int(batch_size)
        if batch_size < 1:
            raise DataError(f'batch size {batch_size} must be >= 1')
        rows, rots, labels, n_cls = self._class_examples()
        total = len(rows)
        self.write_class_split()   # the training starts: a later test reads the classes back
        c = self._consts()
        with tf.device('/CPU:0'):
            if self._class_vars is None:
                self._class_vars = tf.Variable(self._class_next, dtype=tf.int64, trainable=False)
            ex = tf.constant(np.stack([rows, rots, labels], 1))              # [E, 3]
            key = tf.constant(self._ensure_train_key(), tf.int64)
        pos_var = self._class_vars

        def epoch(e, start):
            # seeds (key, -1 - e) never meet the episodic stream's (key, j >= 0)
            perm = tf.argsort(tf.random.stateless_uniform([total], tf.stack([key, -1 - e]), dtype=tf.float64))
            pos = e * total + tf.range(total, dtype=tf.int64)
            return tf.data.Dataset.from_tensor_slices((pos, perm)).skip(tf.maximum(start - e * total, 0))

        def stream(_):  # runs when an iterator is created: reads the position then
            start = pos_var.read_value()
            return tf.data.Dataset.range(start // total, np.iinfo(np.int64).max // total).flat_map(
                lambda e: epoch(e, start))
        src = (tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).flat_map(stream)
               .batch(batch_size, drop_remainder=True)
               .map(lambda pos, i: (pos[-1] + 1, tf.gather(ex, i))))
        eye = tf.eye(n_cls, dtype=tf.float32)
        autotune = tf.data.AUTOTUNE
        if self.in_memory:
            ds = src.map(lambda p, e: (p, self._images(e[:, 0], e[:, 1]), tf.gather(eye, e[:, 2])),
                         num_parallel_calls=autotune)
        else:
            pixels = (src.flat_map(lambda p, e: tf.data.Dataset.from_tensor_slices(e[:, 0]))
                      .map(self._load_jpeg, num_parallel_calls=autotune).batch(batch_size, drop_remainder=True))
            ds = tf.data.Dataset.zip((src, pixels)).map(lambda m, x: (m[0], x, tf.gather(eye, m[1][:, 2])))
        d = self.dim_input
        ds = ds.map(lambda p, x, y: (p, tf.ensure_shape(x, [batch_size, d]), tf.ensure_shape(y, [batch_size, n_cls])))
        ds = ds.prefetch(autotune)

        def deliver(p, images, labels):  # synchronous and last: runs as the consumer takes a batch
            with tf.control_dependencies([pos_var.assign(p)]):
                return tf.identity(images), tf.identity(labels)
        options = tf.data.Options()
        options.deterministic = True
        options.experimental_optimization.inject_prefetch = False
        return ds.map(deliver).with_options(options)

    def _load_jpeg(self, i):
        """MiniImagenet image i (a row of self.paths) as float32 [dim_input] in [0, 1], H, W, C order."""
        import tensorflow as tf
        image = tf.io.decode_jpeg(tf.io.read_file(tf.gather(self._consts()['paths'], i)), channels=3)
        shape = tf.shape(image)
        image = tf.cond(tf.logical_and(tf.equal(shape[0], MINI_SIZE[0]), tf.equal(shape[1], MINI_SIZE[1])),
                        lambda: image, lambda: _resize_uint8(image))
        return tf.cast(tf.reshape(image, [self.dim_input]), tf.float32) / 255.0

    # ---- tf.data ----
    def make_data_tensor(self, train=True):
        """tf.data.Dataset of (images [B, N*S, dim_input] float32, labels [B, N*S, N] float32 one-hot),
        N = num_classes_for(train), S = samples_per_class_for(train).

        train=True: an endless stream of fresh meta-batches of the meta-train classes. It starts at
        the generator's position (get_state/set_state) when an iterator is created; delivering a
        batch advances the position, internal prefetching does not (so do not add a prefetch of
        your own if you checkpoint it). Meta-batch j is a pure function of (train_key, j).
        train=False: the 600 fixed evaluation tasks (val classes, or test classes with
        config.test_set), B per element, repeating endlessly like the original's queue: element j
        holds tasks j*B .. j*B+B-1 (mod 600); take ceil(600/B) elements for one pass.
        Call it eagerly (not inside a tf.function): the training stream creates two tf.Variables.
        """
        import tensorflow as tf
        if self.datasource == 'sinusoid':
            raise DataError('make_data_tensor() is for omniglot/miniimagenet; use generate() for sinusoid')
        if self.protocol != 'maml':
            raise DataError(f'make_data_tensor() serves --protocol=maml; with --protocol={self.protocol} '
                            f'use sample_mini_dataset() or make_class_batches()')
        b, n, d = self.batch_size, self.num_classes_for(train), self.dim_input
        r = n * self.samples_per_class_for(train)
        autotune = tf.data.AUTOTUNE
        c = self._consts()
        eye = c['eye_train'] if train else c['eye']
        if train:
            self.write_class_split()   # the training starts: a later test reads the classes back
            if self._vars is None:
                with tf.device('/CPU:0'):
                    self._vars = (tf.Variable(self._ensure_train_key(), dtype=tf.int64, trainable=False),
                                  tf.Variable(self._train_next, dtype=tf.int64, trainable=False))
            key_var, next_var = self._vars

            def stream(_):  # runs when an iterator is created: reads the position then
                key = key_var.read_value()
                return tf.data.Dataset.range(next_var.read_value(), np.iinfo(np.int64).max).map(
                    lambda j: (j,) + tuple(self._train_rows(key, j)))
            src = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).flat_map(stream)
        else:
            img_t, lab_t, rot_t = (tf.constant(x) for x in self.eval_tasks()[:3])

            def rows(j):
                t = (j * b + tf.range(b, dtype=tf.int64)) % NUM_EVAL_TASKS
                return j, tf.gather(img_t, t), tf.gather(lab_t, t), tf.gather(rot_t, t)
            src = tf.data.Dataset.counter().map(rows)

        if self.in_memory:
            ds = src.map(lambda j, img, lab, rot: (j, self._images(img, rot), tf.gather(eye, lab)),
                         num_parallel_calls=autotune)
        else:
            pixels = (src.flat_map(lambda j, img, lab, rot: tf.data.Dataset.from_tensor_slices(tf.reshape(img, [-1])))
                      .map(self._load_jpeg, num_parallel_calls=autotune)
                      .batch(b * r, drop_remainder=True)
                      .map(lambda x: tf.reshape(x, [b, r, d])))
            ds = tf.data.Dataset.zip((src, pixels)).map(
                lambda m, x: (m[0], x, tf.gather(eye, m[2])))
        ds = ds.map(lambda j, x, y: (j, tf.ensure_shape(x, [b, r, d]), tf.ensure_shape(y, [b, r, n])))
        ds = ds.prefetch(autotune)
        if train:
            def deliver(j, images, labels):  # synchronous and last: runs as the consumer takes a batch
                with tf.control_dependencies([next_var.assign(j + 1)]):
                    return tf.identity(images), tf.identity(labels)
            ds = ds.map(deliver)
        else:
            ds = ds.map(lambda j, images, labels: (images, labels))
        options = tf.data.Options()
        options.deterministic = True
        options.experimental_optimization.inject_prefetch = False
        return ds.with_options(options)


class _Module(types.ModuleType):
    """This module, where setting a name that moved into datasources/ also sets it there: tests patch
    data_generator._online / _load_files and scripts/split_variance.py sets OMNIGLOT_SPLIT_SEED, as they did
    when everything lived here, and the code that reads the name now lives in a datasources module."""

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        for module in (episodes, miniimagenet, omniglot, sinusoid):
            if name in vars(module):
                setattr(module, name, value)


sys.modules[__name__].__class__ = _Module
