"""MiniImagenet: both layouts on a tiny fake tree of real JPEGs, the CSV -> folders converter, errors."""
import importlib.util
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from config import Config
from data_generator import DataError, DataGenerator, num_samples_per_class

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, 'scripts', 'make_miniimagenet.py')
SPLITS = ('train', 'val', 'test')


def _load_script():
    spec = importlib.util.spec_from_file_location('make_miniimagenet', SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


mk = _load_script()


def jpeg(path, size, seed):
    """A smooth random picture with some texture, saved as JPEG (Pillow defaults)."""
    rng = np.random.RandomState(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    base = rng.rand(3) * 255 * np.stack([xx, yy, 1 - xx], -1) + rng.rand(h, w, 3) * 40
    Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(path, format='JPEG')


def label_of(split, c):
    return f'n{SPLITS.index(split)}{c:07d}'


def fake_folders(root, classes=6, per_class=4):
    for si, split in enumerate(SPLITS):
        for c in range(classes):
            d = root / split / label_of(split, c)
            d.mkdir(parents=True)
            for i in range(per_class):
                jpeg(d / f'{label_of(split, c)}{i:08d}.jpg', (84, 84), seed=1000 * si + 10 * c + i)
    return root


def fake_csv(root, classes=6, per_class=4, size=(100, 90)):
    (root / 'images').mkdir(parents=True)
    for si, split in enumerate(SPLITS):
        lines = ['filename,label']
        for c in range(classes):
            for i in range(per_class):
                name = f'{label_of(split, c)}{i:08d}.jpg'
                jpeg(root / 'images' / name, size, seed=1000 * si + 10 * c + i)
                lines.append(f'{name},{label_of(split, c)}')
        (root / f'{split}.csv').write_text('\n'.join(lines) + '\n')
    return root


def mini_config(data_dir, **kw):
    base = dict(datasource='miniimagenet', num_classes=5, update_batch_size=1, meta_batch_size=2,
                num_query=1, seed=0, data_dir=str(data_dir))
    base.update(kw)
    return Config(**base)


def make(cfg):
    return DataGenerator(num_samples_per_class(cfg), cfg.meta_batch_size, cfg)


def first(ds, n=1):
    it = iter(ds)
    return [tuple(t.numpy() for t in next(it)) for _ in range(n)]


def decoded(path):
    return (tf.cast(tf.io.decode_jpeg(tf.io.read_file(path), channels=3), tf.float32) / 255.0).numpy().ravel()


def check_tasks(dg, images, labels, img, lab, rot, split):
    n, s = dg.num_classes, dg.num_samples_per_class
    assert images.shape == (dg.batch_size, n * s, 21168) and labels.shape == (dg.batch_size, n * s, n)
    np.testing.assert_array_equal(labels, np.eye(n, dtype=np.float32)[lab])
    assert not rot.any()                                           # never rotated
    for t in range(dg.batch_size):
        for blk in lab[t].reshape(s, n):
            assert sorted(blk) == list(range(n))
        classes = [os.path.basename(os.path.dirname(dg.paths[i])) for i in img[t]]
        for c in range(n):
            rows = np.flatnonzero(lab[t] == c)
            assert len({classes[q] for q in rows}) == 1 and len(set(img[t][rows])) == s
        assert len(set(classes)) == n and all(x.startswith(label_of(split, 0)[:2]) for x in classes)
        for q in range(n * s):
            np.testing.assert_array_equal(images[t, q], decoded(dg.paths[img[t, q]]))


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    return fake_folders(tmp_path_factory.mktemp('mini') / 'miniImagenet')


def test_folder_layout_tasks(folders):
    dg = make(mini_config(folders))
    assert (dg.num_classes, dg.dim_input, dg.dim_output, dg.num_samples_per_class) == (5, 21168, 5, 2)
    assert dg.metatrain_character_folders == [f'train/{label_of("train", c)}' for c in range(6)]
    assert dg.metaval_character_folders == [f'val/{label_of("val", c)}' for c in range(6)]
    images, labels = first(dg.make_data_tensor(train=True))[0]
    check_tasks(dg, images, labels, *dg.train_task_indices(0), 'train')


def test_eval_tasks_fixed_and_test_split(folders):
    cfg = mini_config(folders.parent, train=False, test_set=True, num_query=-1, update_batch_size=2)
    dg = make(cfg)                                                 # data_dir = the parent folder
    assert dg.num_samples_per_class == 4                           # 2K at test time
    assert dg.metaval_character_folders[0] == f'test/{label_of("test", 0)}'
    ds = dg.make_data_tensor(train=False)
    a, b = first(ds, 2), first(make(cfg.replace(seed=5)).make_data_tensor(train=False), 2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[0], y[0])
        np.testing.assert_array_equal(x[1], y[1])
    img, lab, rot, _ = dg.eval_tasks()
    check_tasks(dg, a[1][0], a[1][1], img[2:4], lab[2:4], rot[2:4], 'test')


def test_csv_layout_converter_and_idempotence(tmp_path):
    src = fake_csv(tmp_path / 'ravi')
    direct = make(mini_config(src))                                # the CSV layout as it is
    assert direct.metatrain_character_folders == [f'train/{label_of("train", c)}' for c in range(6)]
    images, labels = first(direct.make_data_tensor())[0]
    assert images.shape == (2, 10, 21168) and np.isfinite(images).all() and 0 <= images.min() <= images.max() <= 1

    dst = tmp_path / 'miniImagenet'
    logs = []
    assert mk.convert(str(src), str(dst), log=logs.append, every=10) == {'converted': 72, 'skipped': 0}
    assert any('72/72 images' in m for m in logs)
    out = dst / 'val' / label_of('val', 2) / f'{label_of("val", 2)}00000001.jpg'
    with Image.open(out) as im:
        assert im.size == (84, 84) and im.mode == 'RGB'
    ref = io.BytesIO()                                             # the original proc_images.py recipe
    Image.open(src / 'images' / out.name).resize((84, 84), resample=Image.LANCZOS).save(ref, format='JPEG')
    assert out.read_bytes() == ref.getvalue()
    mtime = out.stat().st_mtime_ns
    os.remove(dst / 'train' / label_of('train', 0) / f'{label_of("train", 0)}00000003.jpg')
    (dst / 'train' / label_of('train', 1) / (mk.TMP_PREFIX + 'x.jpg')).write_bytes(b'half')   # interrupted run
    assert mk.convert(str(src), str(dst), log=logs.append) == {'converted': 1, 'skipped': 71}
    assert out.stat().st_mtime_ns == mtime
    assert not [f for _, _, fs in os.walk(dst) for f in fs if f.startswith(mk.TMP_PREFIX)]

    dg = make(mini_config(dst))
    assert dg.metatrain_character_folders == direct.metatrain_character_folders
    images, labels = first(dg.make_data_tensor())[0]
    check_tasks(dg, images, labels, *dg.train_task_indices(0), 'train')


def test_converter_command_line(tmp_path):
    src = fake_csv(tmp_path / 'ravi', classes=5, per_class=1, size=(90, 84))
    run = subprocess.run([sys.executable, SCRIPT, str(src), str(tmp_path / 'out'), '--every', '5'],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert '15/15 images' in run.stderr and len(os.listdir(tmp_path / 'out' / 'test')) == 5
    os.remove(src / 'val.csv')
    run = subprocess.run([sys.executable, SCRIPT, str(src), str(tmp_path / 'out')],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and run.stderr.count('\n') == 1 and 'val.csv is missing' in run.stderr


def one_line_error(fn, *needles):
    with pytest.raises(DataError) as e:
        fn()
    assert '\n' not in str(e.value)
    for needle in needles:
        assert needle in str(e.value), str(e.value)


def test_missing_or_incomplete_data_errors(tmp_path, folders, monkeypatch):
    (tmp_path / 'empty').mkdir()
    one_line_error(lambda: make(mini_config(tmp_path / 'empty')), 'no MiniImagenet data', 'make_miniimagenet.py')
    monkeypatch.chdir(tmp_path / 'empty')
    one_line_error(lambda: make(mini_config('')), './data/miniImagenet')
    part = tmp_path / 'part'
    (part / 'train' / 'n1').mkdir(parents=True)
    jpeg(part / 'train' / 'n1' / 'a.jpg', (84, 84), 0)
    one_line_error(lambda: make(mini_config(part)), 'no val/ folder')
    one_line_error(lambda: make(mini_config(folders, num_query=-1)),   # K + 15 = 16 > 4 images per class
                   'fewer than the 16 images', '--num_query')
    one_line_error(lambda: make(mini_config(folders, num_classes=7)), 'fewer than --num_classes=7')
    src = fake_csv(tmp_path / 'ravi', classes=5, per_class=1)
    os.remove(src / 'images' / f'{label_of("train", 3)}00000000.jpg')
    one_line_error(lambda: make(mini_config(src)), '1 images listed', 'missing')
    with pytest.raises(mk.ConvertError, match='not in'):
        mk.convert(str(src), str(tmp_path / 'dst'))


def test_class_batches_are_train_images_only_and_cover_an_epoch(folders):
    dg = make(mini_config(folders, seed=1))
    assert dg.num_train_classes_total == 6
    it = iter(dg.make_class_batches(5))
    batches = [tuple(t.numpy() for t in next(it)) for _ in range(5)]   # 25 >= one epoch of 6 x 4 images
    train_paths = {p for i, p in enumerate(dg.paths) if i < 24}
    by_pixels = {decoded(p).tobytes(): p for p in dg.paths}           # every train and val image
    seen = []
    for images, labels in batches:
        assert images.shape == (5, 21168) and labels.shape == (5, 6)
        for x, y in zip(images, labels):
            path = by_pixels[x.tobytes()]
            assert path in train_paths                                 # never a val (or test) image
            assert os.path.basename(os.path.dirname(path)) == label_of('train', int(np.argmax(y)))
            seen.append(path)
    assert sorted(seen[:24]) == sorted(train_paths)                    # each train image once per epoch
    assert dg.get_state()['class_next'] == 25
