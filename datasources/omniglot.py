"""Omniglot: finding, decoding and caching the images (the official zips, an extracted or omniglot_resized
tree, or tensorflow_datasets), all decoded once into one uint8 array (see docs/DATA.md)."""
import hashlib
import io
import json
import logging
import os
import socket
import tempfile
import zipfile

import numpy as np

from datasources.common import DataError, _visible_dirs

log = logging.getLogger('data_generator')   # the name main.py configures

OMNIGLOT_SPLIT_SEED = 1       # the original's random.seed(1) before shuffling the characters
OMNIGLOT_NUM_TRAIN = 1100     # the original: num_train = 1200 - num_val
OMNIGLOT_NUM_VAL = 100
OMNIGLOT_SIZE = (28, 28)
CACHE_VERSION = 1
CACHE_ENV = 'MAML_TF2_CACHE'  # a folder for the Omniglot cache, or 'off' to disable caching

_OFFICIAL = ('images_background', 'images_evaluation')
_SMALL = ('images_background_small1', 'images_background_small2')
_GET_ZIPS = ('put images_background.zip and images_evaluation.zip (github.com/brendenlake/omniglot, '
             'folder python/) in ./data/omniglot or pass --data_dir=DIR')

def omniglot_pixels(im):
    """28x28 uint8 pixels (0..255) of an opened Omniglot PNG, as the original pipeline saw them.

    The original resized every 105x105 PNG once with `resize((28, 28), resample=Image.LANCZOS)`
    and saved it as PNG; Pillow turns LANCZOS into NEAREST for the 1-bit (mode '1') Omniglot
    images, and the saved 1-bit PNG decodes (tf.io.decode_png) to 0/255. Images that already are
    28x28 (an `omniglot_resized` tree) are taken as they are.
    """
    from PIL import Image
    if im.size != OMNIGLOT_SIZE:
        im = im.resize(OMNIGLOT_SIZE, resample=Image.LANCZOS)
    if im.mode == '1':
        return np.asarray(im, dtype=np.uint8) * np.uint8(255)
    if im.mode != 'L':
        im = im.convert('L')
    return np.asarray(im, dtype=np.uint8)


def _decode_png(data, what):
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as im:
            return omniglot_pixels(im)
    except Exception as e:  # PIL raises many kinds
        raise DataError(f'cannot decode Omniglot image {what} ({type(e).__name__}: {e}); '
                        f're-download the data ({_GET_ZIPS})') from None


def _tree_characters(root):
    """{(alphabet, character): {file: path}} of a tree root/alphabet/character/*.png."""
    chars = {}
    for fam in _visible_dirs(root):
        fam_dir = os.path.join(root, fam)
        for ch in _visible_dirs(fam_dir):
            ch_dir = os.path.join(fam_dir, ch)
            chars[(fam, ch)] = {f: os.path.join(ch_dir, f) for f in os.listdir(ch_dir)
                                if f.lower().endswith('.png') and not f.startswith('.')}
    return chars


def _is_tree(root):
    """True if root looks like alphabet/character/*.png (the original's omniglot_resized)."""
    try:
        for fam in _visible_dirs(root):
            for ch in _visible_dirs(os.path.join(root, fam))[:3]:
                if any(f.lower().endswith('.png') for f in os.listdir(os.path.join(root, fam, ch))):
                    return True
    except OSError:
        return False
    return False


def _official_parts(root):
    """[(name, kind, path)] of the official zips / extracted folders present in root."""
    parts = []
    for name in _OFFICIAL + _SMALL:
        z, d = os.path.join(root, name + '.zip'), os.path.join(root, name)
        if os.path.isfile(z):
            parts.append((name, 'zip', z))
        elif os.path.isdir(d):
            inner = os.path.join(d, name)  # unzipped into a folder of the same name
            if _visible_dirs(d) == [name]:
                d = inner
            parts.append((name, 'dir', d))
    if any(p[0] == 'images_background' for p in parts):  # small1/2 are subsets of it
        parts = [p for p in parts if p[0] not in _SMALL]
    return parts


def _official_characters(parts):
    """{(alphabet, character): {file: source}} merged over the official zips / folders."""
    chars = {}
    for name, kind, path in parts:
        if kind == 'dir':
            for key, files in _tree_characters(path).items():
                chars.setdefault(key, {}).update({f: ('file', p) for f, p in files.items()})
            continue
        try:
            with zipfile.ZipFile(path) as zf:
                members = zf.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f'{path} is not a readable zip ({e}); download it again') from None
        for m in members:
            parts_ = m.split('/')
            if parts_ and parts_[0] == name:
                parts_ = parts_[1:]
            if len(parts_) != 3 or not parts_[2].lower().endswith('.png') or parts_[2].startswith('.'):
                continue
            chars.setdefault((parts_[0], parts_[1]), {})[parts_[2]] = ('zip', path, m)
    return chars


def _stat_key(path):
    """[real path, size, mtime] of a source file: a symlinked and a direct path to the same file
    give the same key (so they share one cache instead of rebuilding it in turn)."""
    st = os.stat(path)
    return [os.path.realpath(path), st.st_size, st.st_mtime_ns]


def cache_dir():
    """The folder of the Omniglot cache, or None when caching is off.

    $MAML_TF2_CACHE if set (a folder, or 'off' to disable caching), else the per-user XDG cache
    folder $XDG_CACHE_HOME/maml-tf2 (default ~/.cache/maml-tf2). Never the data folder: reference
    and shared data folders stay untouched.
    """
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in ('', '0', 'off', 'none', 'false') else os.path.expanduser(env)
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'maml-tf2')


def _cache_dirs(data_root=None):
    """[cache_dir()] or [] (data_root is not used: caches never go beside the data)."""
    d = cache_dir()
    return [d] if d else []


def _cache_name(fingerprint):
    import PIL
    blob = json.dumps([CACHE_VERSION, PIL.__version__, fingerprint], sort_keys=True).encode()
    return 'maml_tf2_omniglot28_' + hashlib.sha256(blob).hexdigest()[:16] + '.npz'


def _read_cache(dirs, fname):
    for d in dirs:
        path = os.path.join(d, fname)
        if not os.path.isfile(path):
            continue
        try:
            with np.load(path, allow_pickle=False) as z:
                data = _OmniglotData([str(n) for n in z['names']], z['images'], z['offsets'],
                                     [str(f) for f in z['files']])
            data.validate()
            log.info('Omniglot: loaded cache %s', path)
            return data
        except Exception as e:  # a corrupt cache is rebuilt, never trusted
            log.warning('Omniglot: ignoring unreadable cache %s (%s)', path, e)
    return None


def _writable(d):
    """Whether files may be added to folder d: os.access, and (for root, whom access never stops)
    the folder's own write bits, so a read-only reference folder stays untouched."""
    try:
        mode = os.stat(d).st_mode
    except OSError:
        return False
    if not os.access(d, os.W_OK):
        return False
    return not (hasattr(os, 'geteuid') and os.geteuid() == 0 and not mode & 0o222)


def _write_cache(dirs, fname, data):
    """Writes the cache atomically (temporary file + rename) into the first writable folder of dirs;
    returns its path, or None when none is writable (the data then stays in memory only)."""
    for d in dirs:
        tmp = None
        try:
            if not os.path.isdir(d):
                os.makedirs(d, exist_ok=True)
            if not _writable(d):
                continue
            fd, tmp = tempfile.mkstemp(prefix='.' + fname, suffix='.tmp', dir=d)
            with os.fdopen(fd, 'wb') as f:
                np.savez_compressed(f, names=np.array(data.names), images=data.images,
                                    offsets=data.offsets, files=np.array(data.files))
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, os.path.join(d, fname))
            tmp = None   # other keys' caches are left alone: they may belong to other data in use
            log.info('Omniglot: wrote cache %s', os.path.join(d, fname))
            return os.path.join(d, fname)
        except OSError:
            continue
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.remove(tmp)
    return None


class _OmniglotData:
    """Characters in sorted (alphabet, character) order and their images, concatenated."""

    def __init__(self, names, images, offsets, files):
        self.names = list(names)                     # 'Alphabet/characterNN'
        self.images = np.ascontiguousarray(images, dtype=np.uint8)   # [M, 28, 28], 0..255
        self.offsets = np.asarray(offsets, dtype=np.int64)           # [C + 1]
        self.files = list(files)                     # [M] file names within their character

    def validate(self):
        c, m = len(self.names), self.images.shape[0]
        if (self.images.shape[1:] != OMNIGLOT_SIZE or self.offsets.shape != (c + 1,)
                or self.offsets[0] != 0 or self.offsets[-1] != m or len(self.files) != m
                or np.any(np.diff(self.offsets) < 0)):
            raise ValueError('inconsistent Omniglot arrays')

    def index(self, name, file):
        """Row in `images` of character `name`'s image `file`."""
        c = self.names.index(name)
        return int(self.offsets[c]) + self.files[self.offsets[c]:self.offsets[c + 1]].index(file)


def _build_data(chars, load):
    """_OmniglotData from {(alphabet, character): {file: source}}; load(source, what) -> pixels."""
    keys = sorted(chars)
    names, files, offsets = [], [], [0]
    for key in keys:
        names.append(key[0] + '/' + key[1])
        fs = sorted(chars[key])
        files.extend(fs)
        offsets.append(offsets[-1] + len(fs))
    images = np.empty((len(files),) + OMNIGLOT_SIZE, np.uint8)
    i = 0
    for key in keys:
        for f in sorted(chars[key]):
            images[i] = load(chars[key][f], f'{key[0]}/{key[1]}/{f}')
            i += 1
    return _OmniglotData(names, images, offsets, files)


def _load_files(chars):
    zips = {}

    def load(src, what):
        if src[0] == 'file':
            try:
                with open(src[1], 'rb') as f:
                    return _decode_png(f.read(), src[1])
            except OSError as e:
                raise DataError(f'cannot read {src[1]} ({e}); check the Omniglot folder') from None
        if src[1] not in zips:
            zips[src[1]] = zipfile.ZipFile(src[1])
        try:
            return _decode_png(zips[src[1]].read(src[2]), f'{src[2]} in {src[1]}')
        except (zipfile.BadZipFile, OSError, KeyError) as e:
            raise DataError(f'cannot read {src[2]} from {src[1]} ({e}); download the zip again') from None

    try:
        return _build_data(chars, load)
    finally:
        for z in zips.values():
            z.close()


def _fingerprint(kind, chars, parts=()):
    if kind == 'official' and all(p[1] == 'zip' for p in parts):
        return [kind, [[p[0]] + _stat_key(p[2]) for p in parts]]
    srcs = []
    for key in sorted(chars):
        for f, src in sorted(chars[key].items()):
            srcs.append(_stat_key(src[1]) if src[0] == 'file' else [src[2]] + _stat_key(src[1]))
    return [kind, srcs]


def _online(host='github.com', timeout=3.0):
    """Whether a download can work (a proxy is trusted to); keeps offline failures fast."""
    if any(os.environ.get(v) for v in ('HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy')):
        return True
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _load_tfds():
    """Omniglot from tensorflow_datasets ('omniglot', splits train+test = background+evaluation)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError(f'Omniglot not found and tensorflow_datasets is not installed: {_GET_ZIPS}') from None
    from PIL import Image
    try:
        builder = tfds.builder('omniglot')
        if not builder.is_prepared() and not _online():
            raise DataError(f'Omniglot not found (no ./data/omniglot, no prepared tensorflow_datasets '
                            f'copy, and no network to download one): {_GET_ZIPS}')
        ds, info = tfds.load('omniglot', split='train+test', with_info=True, shuffle_files=False)
        alphabets = info.features['alphabet'].names
        fingerprint = None
        if os.path.isdir(builder.data_dir):
            fingerprint = ['tfds', str(builder.data_dir)] + sorted(
                _stat_key(os.path.join(builder.data_dir, f)) for f in os.listdir(builder.data_dir))
        dirs = _cache_dirs()
        fname = _cache_name(fingerprint) if fingerprint else None
        if fname:
            data = _read_cache(dirs, fname)
            if data is not None:
                return data
        chars = {}
        for ex in tfds.as_numpy(ds):
            img = np.asarray(ex['image'])
            img = img[..., 0] if img.ndim == 3 else img
            key = (alphabets[int(ex['alphabet'])], 'character%02d' % (int(ex['alphabet_char_id']) + 1))
            files = chars.setdefault(key, {})
            files['tfds_%05d' % len(files)] = Image.fromarray(img > 127)  # mode '1', as the PNGs
    except DataError:
        raise
    except Exception as e:
        raise DataError(f'Omniglot from tensorflow_datasets failed ({type(e).__name__}: '
                        f'{str(e).splitlines()[0] if str(e) else ""}); {_GET_ZIPS}') from None
    if not chars:
        raise DataError(f'tensorflow_datasets returned no Omniglot images; {_GET_ZIPS}')
    data = _build_data(chars, lambda im, what: omniglot_pixels(im))
    if fname:
        _write_cache(dirs, fname, data)
    return data


def find_omniglot(data_dir=''):
    """('official', root, parts) | ('tree', root, None) | ('tfds', None, None) for a data_dir."""
    if data_dir:
        root = os.path.expanduser(data_dir)
        if not os.path.isdir(root):
            raise DataError(f'--data_dir={data_dir} is not a folder: {_GET_ZIPS}')
        candidates = [root, os.path.join(root, 'omniglot'), os.path.join(root, 'omniglot_resized')]
    else:
        candidates = [os.path.join('.', 'data', 'omniglot'), os.path.join('.', 'data', 'omniglot_resized')]
    for c in candidates:
        if os.path.isdir(c):
            parts = _official_parts(c)
            if parts:
                return 'official', c, parts
            if _is_tree(c):
                return 'tree', c, None
    if data_dir:
        raise DataError(f'no Omniglot data in --data_dir={data_dir} (expected images_background.zip and '
                        f'images_evaluation.zip, zipped or extracted, or an omniglot_resized tree '
                        f'alphabet/character/*.png): {_GET_ZIPS}')
    return 'tfds', None, None


def load_omniglot(data_dir=''):
    """All Omniglot images as _OmniglotData, from data_dir / ./data / tensorflow_datasets, cached."""
    kind, root, parts = find_omniglot(data_dir)
    if kind == 'tfds':
        return _load_tfds()
    if kind == 'official':
        chars = _official_characters(parts)
    else:
        chars = {k: {f: ('file', p) for f, p in files.items()} for k, files in _tree_characters(root).items()}
    if not chars:
        raise DataError(f'no Omniglot characters found in {root}: {_GET_ZIPS}')
    dirs = _cache_dirs()
    fname = _cache_name(_fingerprint(kind, chars, parts or ()))
    data = _read_cache(dirs, fname)
    if data is None:
        log.info('Omniglot: decoding %d characters from %s', len(chars), root)
        data = _load_files(chars)
        _write_cache(dirs, fname, data)
    return data

