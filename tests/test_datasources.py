"""A user's data (issue 27 item 3): --datasource=folder, tfds:NAME and MODULE:FUNCTION, on tiny data built here.

Every image's pixels say where it came from (class c, image i: value 10 * c + i), so the tests can check that a
task holds the images of the classes its labels say.
"""
import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

import main
from config import Config, exp_string
from datasources.folder import split_by_fractions
from data_generator import DataError, DataGenerator, num_samples_per_class, with_image_shape

SIZE = 8


def write_image(path, value, size=(SIZE, SIZE), mode='L'):
    """An image of one value (gray, or (value, value + 1, value + 2) in RGB) at `path` (format from the name)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if mode == 'RGB':
        arr = np.zeros(size[::-1] + (3,), np.uint8) + np.array([value, value + 1, value + 2], np.uint8)
    else:
        arr = np.full(size[::-1], value, np.uint8)
    Image.fromarray(arr, mode).save(path)


def make_tree(root, classes=8, per_class=4, ext='png', split=None):
    """root/class_c/img_i.EXT (or root/SPLIT/class_c/... with split = {split: [class indices]}); pixel 10c + i."""
    for c in range(classes):
        sub = '' if split is None else next(s for s, cs in split.items() if c in cs)
        for i in range(per_class):
            write_image(os.path.join(root, sub, f'class_{c}', f'img_{i}.{ext}'), 10 * c + i)
    return str(root)


def cfg(data_dir, tmp_path, **kw):
    base = dict(datasource='folder', data_dir=str(data_dir), num_classes=2, update_batch_size=1, meta_batch_size=2,
                seed=0, logdir=str(tmp_path / 'logs'))
    base.update(kw)
    return Config(**base)


def generator(config, run_dir=None):
    return DataGenerator(num_samples_per_class(config), config.meta_batch_size, config, run_dir=run_dir)


def one_line_error(fn, *parts):
    with pytest.raises(DataError) as e:
        fn()
    message = str(e.value)
    assert '\n' not in message
    for p in parts:
        assert p in message, message
    return message


def class_of(pixel):
    return int(round(pixel * 255)) // 10


# ------------------------------------------------------------------------------------------------ folder
def test_folder_tasks_hold_the_images_of_their_classes(tmp_path):
    root = make_tree(tmp_path / 'data', classes=20)
    config = cfg(root, tmp_path)
    dg = generator(config.replace(num_classes=3))
    config = config.replace(num_classes=3)
    assert (dg.img_size, dg.channels, dg.dim_input) == ((SIZE, SIZE), 1, SIZE * SIZE)
    split = dg.class_split
    assert [len(split[s]) for s in ('train', 'val', 'test')] == [13, 3, 4]   # round(0.64 * 20), round(0.16 * 20), the rest
    assert sorted(sum(split.values(), [])) == sorted(f'class_{c}' for c in range(20))
    for train, classes in ((True, split['train']), (False, split['val'])):
        images, labels = next(iter(dg.make_data_tensor(train=train)))
        images, labels = images.numpy(), labels.numpy()
        assert images.shape == (2, 3 * 2, SIZE * SIZE) and labels.shape == (2, 6, 3)
        for t in range(2):
            by_label = {}
            for row in range(6):
                assert np.all(images[t, row] == images[t, row, 0])            # one value: no resize, no inversion
                by_label.setdefault(int(labels[t, row].argmax()), set()).add(class_of(images[t, row, 0]))
            assert all(len(v) == 1 for v in by_label.values()) and len(by_label) == 3
            assert {f'class_{c}' for v in by_label.values() for c in v} <= set(classes)
    # the 600 evaluation tasks are fixed: another generator (another seed) gives the same
    other = generator(config.replace(seed=5))
    assert all(np.array_equal(a, b) for a, b in zip(dg.eval_tasks(), other.eval_tasks()))


def test_folder_split_folders_resize_and_channels(tmp_path):
    root = make_tree(tmp_path / 'data', classes=9, ext='jpg', split={'train': range(5), 'val': range(5, 7),
                                                                     'test': range(7, 9)})
    write_image(os.path.join(root, 'train', 'class_0', 'big.png'), 7, size=(20, 20), mode='RGB')
    (tmp_path / 'data' / 'train' / 'class_0' / 'README.txt').write_text('not an image')
    dg = generator(cfg(root, tmp_path, img_size=6, test_set=True))
    assert dg.class_split == {'train': [f'train/class_{c}' for c in range(5)],
                              'val': ['val/class_5', 'val/class_6'], 'test': ['test/class_7', 'test/class_8']}
    assert (dg.img_size, dg.channels) == ((6, 6), 3)   # one RGB image makes the data RGB
    assert dg.data.images.shape == (5 * 4 + 1 + 2 * 4, 6, 6, 3)
    assert dg.metaval_character_folders == ['test/class_7', 'test/class_8']
    big = dg.data.sources.index(os.path.join(root, 'train', 'class_0', 'big.png'))
    assert np.all(dg.data.images[big] == [7, 8, 9])
    gray = generator(cfg(root, tmp_path, img_size=6, channels=1))
    assert gray.dim_input == 36 and gray.data.images.shape[3] == 1
    assert with_image_shape(Config(), DataGenerator(10, 2, Config())) == Config()   # built-in: unchanged
    assert with_image_shape(cfg(root, tmp_path), gray).channels == 1


def test_folder_bad_data_is_a_one_line_error_naming_the_path(tmp_path):
    root = make_tree(tmp_path / 'data', classes=10)
    name = split_by_fractions([f'class_{c}' for c in range(10)], [0.64, 0.16, 0.2])['train'][0]
    short = os.path.join(root, name)
    for f in ('img_1.png', 'img_2.png', 'img_3.png'):
        os.remove(os.path.join(short, f))
    one_line_error(lambda: generator(cfg(root, tmp_path)), short + ' has 1 images, fewer than the K + Q = 2 a task '
                   'needs (1 meta-train classes are short); add images, or lower --update_batch_size or --num_query')
    root = make_tree(tmp_path / 'data2', classes=10)
    bad = os.path.join(root, name, 'img_0.png')   # a meta-train class: decoded (test classes are at test time)
    with open(bad, 'wb') as f:
        f.write(b'not a png')
    one_line_error(lambda: generator(cfg(root, tmp_path)), f'cannot read image {bad} (UnidentifiedImageError',
                   'replace or remove the file')
    root = make_tree(tmp_path / 'data3', classes=10)
    write_image(os.path.join(root, 'class_5', 'img_9.png'), 1, size=(10, 10))
    one_line_error(lambda: generator(cfg(root, tmp_path)), 'images of different sizes in ' + root,
                   'is 8x8', os.path.join(root, 'class_5', 'img_9.png') + ' is 10x10',
                   'pass --img_size=S to resize all to S x S')
    generator(cfg(root, tmp_path, img_size=8))   # fine with --img_size
    root = make_tree(tmp_path / 'data4', classes=4)
    one_line_error(lambda: generator(cfg(root, tmp_path, num_classes=1, test_set=True)),
                   'no classes left for the test split of ' + root, '--class_split=0.64,0.16,0.20 gives 3/1/0 '
                   'train/val/test classes); give more classes, another --class_split, or a test/ folder')
    one_line_error(lambda: generator(cfg(root, tmp_path, class_split='0.5,0.5')),
                   '--class_split=0.5,0.5 is not three fractions')
    one_line_error(lambda: generator(cfg(tmp_path / 'nothing', tmp_path)), 'is not a folder')
    one_line_error(lambda: generator(cfg('', tmp_path)), '--datasource=folder needs --data_dir=DIR')


def test_too_few_evaluation_classes_warn(tmp_path, caplog):
    root = make_tree(tmp_path / 'data', classes=10)
    with caplog.at_level(logging.WARNING, logger='data_generator'):
        generator(cfg(root, tmp_path, num_classes=2))
    assert 'every evaluation task uses the same classes' in caplog.text


def test_split_file_round_trip(tmp_path):
    """Training writes run_dir/class_split.json when it starts; a test reads it back, so it uses the training's
    classes even after the folder changed; --class_split_file takes the same format."""
    root = make_tree(tmp_path / 'data', classes=10)
    run_dir = str(tmp_path / 'run')
    config = cfg(root, tmp_path)
    dg = generator(config, run_dir)
    assert not os.path.exists(run_dir)                         # nothing written before training starts
    dg.make_data_tensor(train=False)
    assert not os.path.exists(run_dir)
    dg.make_data_tensor(train=True)
    with open(os.path.join(run_dir, 'class_split.json')) as f:
        written = json.load(f)
    assert {s: written[s] for s in ('train', 'val', 'test')} == dg.class_split
    assert os.listdir(run_dir) == ['class_split.json']        # no temporary file left
    for c in range(10, 14):                                     # more classes: another fraction split
        for i in range(4):
            write_image(os.path.join(root, f'class_{c}', f'img_{i}.png'), 10 * c + i)
    assert generator(config).class_split != dg.class_split
    tested = generator(config.replace(train=False, test_set=True), run_dir)
    assert tested.class_split == dg.class_split
    assert tested.metaval_character_folders == dg.class_split['test']
    mine = tmp_path / 'mine.json'
    mine.write_text(json.dumps({'train': ['class_1', 'class_2', 'class_3'], 'val': ['class_4', 'class_5', 'class_6'],
                                'test': ['class_7', 'class_8', 'class_9']}))
    assert generator(config.replace(class_split_file=str(mine))).metatrain_character_folders == \
        ['class_1', 'class_2', 'class_3']
    mine.write_text(json.dumps({'train': ['class_1', 'nope'], 'val': [], 'test': []}))
    one_line_error(lambda: generator(config.replace(class_split_file=str(mine))),
                   f"class 'nope' of the train split in {mine} is not a class of {root}")


def test_exp_string_differs_between_datasets(tmp_path):
    a, b = cfg(tmp_path / 'a', tmp_path), cfg(tmp_path / 'b', tmp_path)
    assert exp_string(a) != exp_string(b)
    assert exp_string(a).startswith(exp_string(a.replace(datasource='omniglot')) + '.folder_a-')
    assert exp_string(a) != exp_string(a.replace(img_size=32))
    assert exp_string(a.replace(data_dir=str(tmp_path / 'a') + '/')) == exp_string(a)
    assert '/' not in exp_string(a.replace(class_split_file='/x/y.json'))
    assert exp_string(Config(datasource='omniglot')) == exp_string(Config())   # built-in: the original's name


# ------------------------------------------------------------------------------------------------ TFDS
def _tiny_tfds(data_dir, name='tiny_shapes', classes=6, per_class=4, size=SIZE, channels=1):
    """Prepares a tiny TFDS image-classification dataset `name` (train + test splits) in data_dir, offline."""
    import tensorflow_datasets as tfds

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(size, size, channels)),
            'label': tfds.features.ClassLabel(names=[f'shape_{c}' for c in range(classes)])}))

    def _split_generators(self, dl_manager):
        return {'train': self._generate_examples(0, per_class // 2),
                'test': self._generate_examples(per_class // 2, per_class)}

    def _generate_examples(self, lo, hi):
        for c in range(classes):
            for i in range(lo, hi):
                yield f'{c}_{i}', {'image': np.full((size, size, channels), 10 * c + i, np.uint8), 'label': c}

    builder = type(''.join(p.title() for p in name.split('_')), (tfds.core.GeneratorBasedBuilder,),
                   {'name': name, 'VERSION': tfds.core.Version('1.0.0'), '_info': _info,
                    '_split_generators': _split_generators, '_generate_examples': _generate_examples})
    builder(data_dir=str(data_dir)).download_and_prepare()


def test_tfds_reader_on_a_tiny_prepared_dataset(tmp_path):
    pytest.importorskip('tensorflow_datasets')
    _tiny_tfds(tmp_path / 'tfds', name='maml_tf2_tiny_a', classes=10)
    config = cfg('', tmp_path, datasource='tfds:maml_tf2_tiny_a', tfds_data_dir=str(tmp_path / 'tfds'), img_size=4)
    dg = generator(config)
    assert (dg.img_size, dg.channels) == ((4, 4), 1)
    assert sorted(sum(dg.class_split.values(), [])) == [f'shape_{c}' for c in range(10)]
    assert np.diff(dg.data.offsets).tolist() == [4] * 8       # train + test examples pooled per class
    images, labels = next(iter(dg.make_data_tensor(train=True)))
    for t in range(2):
        for row in range(images.shape[1]):
            assert np.all(images[t, row].numpy() == images[t, row, 0].numpy())
    # a class list (CIFAR-FS style) picks the classes
    split = tmp_path / 'split.json'
    split.write_text(json.dumps({'train': ['shape_0', 'shape_1', 'shape_2'], 'val': ['shape_3', 'shape_4',
                                 'shape_5'], 'test': ['shape_6', 'shape_7', 'shape_8']}))
    dg = generator(config.replace(class_split_file=str(split)))
    assert dg.metatrain_character_folders == ['shape_0', 'shape_1', 'shape_2']
    assert dg.metaval_character_folders == ['shape_3', 'shape_4', 'shape_5']
    rows = dg.data.images[dg.data.offsets[3]:dg.data.offsets[4], 0, 0, 0]
    assert sorted(rows.tolist()) == [30, 31, 32, 33]   # class 3's train + test examples, unresized (TFDS's order)
    one_line_error(lambda: generator(config.replace(datasource='tfds:maml_tf2_no_such_set')),
                   "no TFDS dataset 'maml_tf2_no_such_set'")


# ------------------------------------------------------------------------------------------------ main.py
def test_main_trains_and_tests_on_a_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(main, 'NUM_TEST_POINTS', 30)
    root = make_tree(tmp_path / 'data', classes=10, per_class=3)
    config = cfg(root, tmp_path, metatrain_iterations=2, xla=False, test_set=True)
    e = main.prepare(config)
    assert e.run_config.channels == 1 and e.run_config.img_size == SIZE
    main.train(e, main.Intervals(summary=1, save=2, print=1, test_print=100))
    run_dir = os.path.join(config.logdir, exp_string(config))
    assert os.path.isfile(os.path.join(run_dir, 'class_split.json'))
    rows = main.test(main.prepare(config.replace(train=False)))
    assert len(rows) == 30
    out = capsys.readouterr().out
    assert 'Mean validation accuracy' in out or 'accuracy' in out.lower()


def test_main_rejects_an_unknown_datasource_in_one_line(tmp_path):
    with pytest.raises(main.UsageError, match="unknown --datasource='nope'; use sinusoid, omniglot or miniimagenet, "
                                              "or for your own data folder, tfds:NAME or MODULE:FUNCTION"):
        main.check_config(Config(datasource='nope'))


# ------------------------------------------------------------------------------------------------ Python tasks
LINES = '''
import numpy as np


def lines(rng, batch_size, num_samples):
    slope = rng.uniform(-2, 2, [batch_size, 1, 1])
    x = rng.uniform(-5, 5, [batch_size, num_samples, 2])
    return x, slope * x[..., :1]


def broken(rng, batch_size, num_samples):
    return rng.uniform(size=[batch_size, num_samples]), None


def failing(rng, batch_size, num_samples):
    raise RuntimeError('my bug')
'''


def test_python_task_family_trains_and_tests(tmp_path, monkeypatch, capsys):
    (tmp_path / 'my_tasks.py').write_text(LINES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(main, 'NUM_TEST_POINTS', 20)
    config = Config(datasource='my_tasks:lines', update_batch_size=3, meta_batch_size=4, update_lr=0.01, norm='None',
                    metatrain_iterations=2, seed=0, xla=False, logdir=str(tmp_path / 'logs'))
    dg = generator(config)
    assert (dg.dim_input, dg.dim_output) == (2, 1)
    x, y, _, _ = dg.generate()
    assert x.shape == (4, 6, 2) and y.shape == (4, 6, 1)
    again = generator(config).generate()
    assert np.array_equal(again[0], x)                          # seeded: the same tasks
    assert '.py_my_tasks.lines-' in exp_string(config)
    main.train(main.prepare(config), main.Intervals(summary=1, save=2, print=1, test_print=100))
    rows = main.test(main.prepare(config.replace(train=False)))
    assert len(rows) == 20 and len(rows[0]) == 1 + 10           # MSE before and after each of 10 steps
    one_line_error(lambda: generator(config.replace(datasource='my_tasks:broken')),
                   '--datasource=my_tasks:broken: the sampler returned shapes (1, 6) and (), not [1, 6, d_in] and '
                   '[1, 6, d_out]')
    one_line_error(lambda: generator(config.replace(datasource='my_tasks:failing')),
                   '--datasource=my_tasks:failing: the sampler failed (RuntimeError: my bug)')
    one_line_error(lambda: generator(config.replace(datasource='my_tasks:nope')), 'my_tasks has no function nope')
    one_line_error(lambda: generator(config.replace(datasource='no_such_module_x:f')), 'cannot import no_such_module_x')
    with pytest.raises(main.UsageError, match='classifies images'):
        main.check_config(config.replace(method='protonet'))
