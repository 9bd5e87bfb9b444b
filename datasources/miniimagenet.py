"""MiniImagenet: finding the files (train/ val/ test/ class folders, or the Ravi & Larochelle images/ + CSVs)."""
import csv
import os

from datasources.common import DataError, _visible_dirs

MINI_SIZE = (84, 84)
MINI_QUERY = 15               # the original trains MiniImagenet with K + 15 examples per class

_MINI_HOW = ('put train/ val/ test/ folders of 84x84 JPEGs (one folder per class) in ./data/miniImagenet '
             'or pass --data_dir=DIR; from the Ravi & Larochelle images/ + train.csv/val.csv/test.csv run '
             'python scripts/make_miniimagenet.py SRC DST')


def find_miniimagenet(data_dir=''):
    """('folders' | 'csv', root) of the MiniImagenet data."""
    if data_dir:
        root = os.path.expanduser(data_dir)
        if not os.path.isdir(root):
            raise DataError(f'--data_dir={data_dir} is not a folder: {_MINI_HOW}')
        candidates = [root] + [os.path.join(root, n) for n in ('miniImagenet', 'miniimagenet', 'mini-imagenet')]
    else:
        candidates = [os.path.join('.', 'data', 'miniImagenet')]
    for c in candidates:
        if any(os.path.isdir(os.path.join(c, s)) for s in ('train', 'val', 'test')):
            return 'folders', c
        if os.path.isdir(os.path.join(c, 'images')) and any(
                os.path.isfile(os.path.join(c, s + '.csv')) for s in ('train', 'val', 'test')):
            return 'csv', c
    raise DataError(f'no MiniImagenet data in {data_dir or "./data/miniImagenet"}: {_MINI_HOW}')


def _mini_split(kind, root, split):
    """[(class name, [paths])] of one split, classes and files sorted."""
    if kind == 'folders':
        d = os.path.join(root, split)
        if not os.path.isdir(d):
            raise DataError(f'MiniImagenet in {root} has no {split}/ folder: {_MINI_HOW}')
        out = []
        for label in _visible_dirs(d):
            cd = os.path.join(d, label)
            files = sorted(f for f in os.listdir(cd)
                           if f.lower().endswith(('.jpg', '.jpeg')) and not f.startswith('.'))
            out.append((split + '/' + label, [os.path.join(cd, f) for f in files]))
        if not out:
            raise DataError(f'MiniImagenet folder {d} has no class folders: {_MINI_HOW}')
        return out
    path = os.path.join(root, split + '.csv')
    if not os.path.isfile(path):
        raise DataError(f'MiniImagenet in {root} has no {split}.csv: {_MINI_HOW}')
    classes = {}
    with open(path, newline='') as f:
        for i, row in enumerate(csv.reader(f)):
            if not row or (i == 0 and row[0].strip().lower() == 'filename'):
                continue
            if len(row) < 2:
                raise DataError(f'{path} line {i + 1} is not "filename,label"; use the Ravi & Larochelle CSVs')
            classes.setdefault(row[1].strip(), []).append(os.path.join(root, 'images', row[0].strip()))
    missing = [p for files in classes.values() for p in files if not os.path.isfile(p)]
    if missing:
        raise DataError(f'{len(missing)} images listed in {path} are missing, e.g. {missing[0]}: '
                        f'put all MiniImagenet JPEGs in {os.path.join(root, "images")}')
    if not classes:
        raise DataError(f'{path} lists no images: {_MINI_HOW}')
    return [(split + '/' + label, sorted(classes[label])) for label in sorted(classes)]


def _resize_uint8(image):
    """84x84 of a decoded JPEG of another size (the Ravi & Larochelle originals; see docs/DATA.md)."""
    import tensorflow as tf
    x = tf.image.resize(tf.cast(image, tf.float32), MINI_SIZE, method='lanczos3', antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)
