"""A user's images: one sub-folder per class (`--datasource=folder --data_dir=DIR`), and what the TFDS reader
shares with it: decoding to S x S x C uint8, the class split and its file in the run folder.

DIR/class/*.{png,jpg,...}, or DIR/train/class/*, DIR/val/class/*, DIR/test/class/* (the class split given by
the folders). Every image Pillow reads is resized to --img_size (Lanczos) and converted to --channels (1: 'L',
3: 'RGB'); with 0 both come from the images. Nothing else is done to them (no inversion, no rotations: those
are Omniglot's). The pixels of the classes in use are decoded once into one uint8 array [M, S, S, C], and
tasks are drawn from it by the built-in sampler (datasources/episodes.py), so training, the fixed 600
evaluation tasks and the result files are those of the built-in image sources.
"""
import json
import logging
import os
import random
import tempfile

import numpy as np

from datasources.common import DataError, _visible_dirs

log = logging.getLogger('data_generator')   # the name main.py configures

CLASS_SPLIT_SEED = 1           # the fixed seed of the class shuffle (independent of --seed)
SPLIT_FILE = 'class_split.json'
SPLITS = ('train', 'val', 'test')
_GRAY_MODES = ('1', 'L', 'LA', 'La', 'I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F')


class ImageSet:
    """Classes and their images, concatenated: names [C] (the class names of the split file), images uint8
    [M, S, S, channels], offsets [C + 1] (class c's images are rows offsets[c]:offsets[c + 1]), sources [M]
    (where each image came from, for messages)."""

    def __init__(self, names, images, offsets, sources):
        self.names = list(names)
        self.images = images
        self.offsets = np.asarray(offsets, np.int64)
        self.sources = list(sources)


# ------------------------------------------------------------------------------------------------ listing
def image_extensions():
    """The file name endings Pillow can open ('.png', '.jpg', ...), lower case."""
    from PIL import Image
    return tuple(sorted(ext.lower() for ext in Image.registered_extensions()))


def _class_files(class_dir, exts):
    return [os.path.join(class_dir, f) for f in sorted(os.listdir(class_dir))
            if not f.startswith('.') and f.lower().endswith(exts) and os.path.isfile(os.path.join(class_dir, f))]


def list_folder(data_dir):
    """({class name: [image paths]}, {split: [class names]} or None) of a folder data set.

    With train/ val/ test/ sub-folders (any of them) the class names are 'train/NAME', ... and the split is
    theirs; otherwise every visible sub-folder of data_dir is a class (its name the folder's). Files are
    listed sorted; only those with an ending Pillow reads count (a README beside the images is ignored).
    """
    how = 'give a folder with one sub-folder of images per class (or train/ val/ test/ folders of those)'
    if not data_dir:
        raise DataError(f'--datasource=folder needs --data_dir=DIR; {how}')
    root = os.path.expanduser(data_dir)
    if not os.path.isdir(root):
        raise DataError(f'--data_dir={data_dir} is not a folder; {how}')
    exts = image_extensions()
    present = [s for s in SPLITS if os.path.isdir(os.path.join(root, s))]
    classes, splits = {}, None
    if present:
        splits = {s: [] for s in SPLITS}
        for s in present:
            for name in _visible_dirs(os.path.join(root, s)):
                classes[s + '/' + name] = _class_files(os.path.join(root, s, name), exts)
                splits[s].append(s + '/' + name)
    else:
        for name in _visible_dirs(root):
            classes[name] = _class_files(os.path.join(root, name), exts)
    if not classes:
        raise DataError(f'no class folders in {root}; {how}')
    return classes, splits


# ------------------------------------------------------------------------------------------------ the split
def parse_fractions(text):
    """[train, val, test] fractions of --class_split ('0.64,0.16,0.20'); they must be >= 0 and sum to 1."""
    try:
        parts = [float(p) for p in text.split(',')]
    except ValueError:
        parts = []
    if len(parts) != 3 or min(parts) < 0 or abs(sum(parts) - 1) > 1e-6:
        raise DataError(f'--class_split={text} is not three fractions >= 0 that sum to 1; pass e.g. '
                        f'--class_split=0.64,0.16,0.20 (train,val,test)')
    return parts


def split_by_fractions(names, fractions):
    """{split: [class names]}: the names sorted, shuffled by random.Random(CLASS_SPLIT_SEED), then cut into
    round(f_train * C) train, round(f_val * C) val and the rest test classes."""
    order = sorted(names)
    random.Random(CLASS_SPLIT_SEED).shuffle(order)
    n_train = int(round(fractions[0] * len(order)))
    n_val = min(int(round(fractions[1] * len(order))), len(order) - n_train)
    return {'train': order[:n_train], 'val': order[n_train:n_train + n_val], 'test': order[n_train + n_val:]}


def read_split_file(path, names, what):
    """{split: [class names]} of a split file (JSON {"train": [...], "val": [...], "test": [...]}); every class
    must be one of `names` (what: the data, for the message) and in one split only."""
    try:
        with open(path) as f:
            spec = json.load(f)
        lists = {s: [str(c) for c in spec.get(s, [])] for s in SPLITS}
    except (OSError, ValueError, AttributeError, TypeError) as e:
        raise DataError(f'cannot read the class split {path} ({type(e).__name__}: {e}); it must be JSON '
                        f'{{"train": [class, ...], "val": [...], "test": [...]}}') from None
    known, seen = set(names), {}
    for s in SPLITS:
        for c in lists[s]:
            if c not in known:
                raise DataError(f'class {c!r} of the {s} split in {path} is not a class of {what}; fix the file '
                                f'(class names as in {SPLIT_FILE}: folder names, or the TFDS label names)')
            if c in seen:
                raise DataError(f'class {c!r} is in both the {seen[c]} and the {s} split of {path}; list it once')
            seen[c] = s
    return lists


def choose_split(config, names, fixed, run_dir, what):
    """({split: [class names]}, where it came from) for the run: the run folder's split file when there is one
    (a test, or a resumed training, uses the classes the training used), else --class_split_file, else the
    data's own train/ val/ test/ folders (`fixed`), else --class_split's fractions."""
    path = os.path.join(run_dir, SPLIT_FILE) if run_dir else ''
    if path and os.path.isfile(path) and (not config.train or config.resume):
        return read_split_file(path, names, what), path
    if config.class_split_file:
        return read_split_file(os.path.expanduser(config.class_split_file), names, what), config.class_split_file
    if fixed is not None:
        return fixed, 'the train/ val/ test/ folders of ' + what
    return split_by_fractions(names, parse_fractions(config.class_split)), '--class_split=' + config.class_split


def check_split(split, needed, source, what):
    """Raises DataError when a split in `needed` has no classes."""
    for s in needed:
        if not split[s]:
            sizes = '/'.join(str(len(split[t])) for t in SPLITS)
            raise DataError(f'no classes left for the {s} split of {what} ({source} gives {sizes} train/val/test '
                            f'classes); give more classes, another --class_split, or a {s}/ folder')


def write_split_file(run_dir, split, extra):
    """Writes run_dir/class_split.json atomically (a temporary file renamed): the split and `extra` (where the
    data is). Returns its path."""
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, SPLIT_FILE)
    fd, tmp = tempfile.mkstemp(prefix='.' + SPLIT_FILE, suffix='.tmp', dir=run_dir)
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(dict(extra, **{s: list(split[s]) for s in SPLITS}), f, indent=1)
            f.write('\n')
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # as any file the run writes (mkstemp makes it private)
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    return path


# ------------------------------------------------------------------------------------------------ pixels
def pixels(im, size, channels):
    """uint8 [size, size, channels] of a PIL image: converted to 'L' (1 channel) or 'RGB' (3), then resized
    with Lanczos when it is not size x size."""
    from PIL import Image
    mode = 'L' if channels == 1 else 'RGB'
    if im.mode != mode:
        im = im.convert(mode)
    if im.size != (size, size):
        im = im.resize((size, size), resample=Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.uint8).reshape(size, size, channels)


def resolve_shape(config, shapes, what):
    """(S, C) of the data: --img_size / --channels, else from the images. shapes: [(where, (width, height),
    channels)] of every image. Raises DataError for mixed or non-square sizes without --img_size."""
    if config.channels not in (0, 1, 3):
        raise DataError(f'--channels={config.channels} must be 1 (grayscale), 3 (RGB) or 0 (from the images)')
    if config.img_size < 0:
        raise DataError(f'--img_size={config.img_size} must be > 0, or 0 to keep the images\' size')
    size = config.img_size
    if not size:
        first = shapes[0]
        other = next((s for s in shapes if s[1] != first[1]), None)
        if other is not None:
            raise DataError(f'images of different sizes in {what} ({first[0]} is {first[1][0]}x{first[1][1]}, '
                            f'{other[0]} is {other[1][0]}x{other[1][1]}); pass --img_size=S to resize all to S x S')
        if first[1][0] != first[1][1]:
            raise DataError(f'the images of {what} are {first[1][0]}x{first[1][1]}, not square; pass --img_size=S '
                            f'to resize them to S x S')
        size = first[1][0]
    channels = config.channels or (3 if any(s[2] == 3 for s in shapes) else 1)
    return size, channels


def _open_error(path, e):
    return DataError(f'cannot read image {path} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}); '
                     f'replace or remove the file')


def load_folder(classes, names, config, what):
    """ImageSet of the classes `names` (in that order) of a list_folder() listing, decoded at the size and
    channels of resolve_shape (from --img_size / --channels or the images). Raises DataError naming the file
    of an image Pillow cannot read."""
    from PIL import Image
    shapes = []
    for name in names:
        for path in classes[name]:
            try:
                with Image.open(path) as im:
                    shapes.append((path, im.size, 1 if im.mode in _GRAY_MODES else 3))
            except Exception as e:   # PIL raises many kinds
                raise _open_error(path, e) from None
    if not shapes:
        raise DataError(f'no images in the class folders of {what}; put images Pillow reads (png, jpg, ...) in them')
    size, channels = resolve_shape(config, shapes, what)
    images = np.empty((len(shapes), size, size, channels), np.uint8)
    sources, offsets, i = [], [0], 0
    log.info('folder: decoding %d images of %d classes from %s', len(shapes), len(names), what)
    for name in names:
        for path in classes[name]:
            try:
                with Image.open(path) as im:
                    images[i] = pixels(im, size, channels)
            except Exception as e:
                raise _open_error(path, e) from None
            sources.append(path)
            i += 1
        offsets.append(i)
    return ImageSet(names, images, offsets, sources)
