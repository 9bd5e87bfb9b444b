"""DataGenerator: sinusoid draws, Omniglot preprocessing, splits, task layout, sources and errors."""
import io
import json
import os
import random
import shutil
import zipfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import data_generator
from config import Config
from data_generator import DataError, DataGenerator, num_samples_per_class

# 28x28 arrays of the literal original recipe: Image.open(f).resize((28, 28), resample=Image.LANCZOS),
# save as PNG, tf.io.decode_png, /255, 1 - x. Values are 0/1: stored as np.packbits of the 784 pixels.
PINNED = {
    ('images_background', 'Alphabet_of_the_Magi/character01', '0709_01.png'):
        '00000000000000000000000000000000000000000000000000000000000000007003f001801800080180008018001c018001c0'
        '1b001c01b003c010006c010004fff000e3800002000000000000000000000000000000000000000000000000000000',
    ('images_background', 'Korean/character05', '0647_13.png'):
        '000000000000000000000000180000008000000c000000c0000004000000400000040000004000000400000040000007c0001f'
        'fc00000400000040000006000000600000020000002000000200000030000003000000300000000000000000000000',
    ('images_evaluation', 'Tengwar/character10', '1540_07.png'):
        '000000000000000000000000000000000000000c00043b80007fc0000180000010000003000000201000020180002018000301'
        '800030780001ff00000000000000000000000000000000000000000000000000000000000000000000000000000000',
}


def pinned_array(hexbits):
    return np.unpackbits(np.frombuffer(bytes.fromhex(hexbits), np.uint8))[:784].reshape(28, 28).astype(np.float32)


@pytest.fixture(autouse=True, scope='module')
def _cache_dir(tmp_path_factory):
    """The Omniglot cache of this module's runs goes to a temporary folder, never ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(data_generator.CACHE_ENV, str(tmp_path_factory.mktemp('cache')))
        yield


def omni_config(**kw):
    base = dict(datasource='omniglot', num_classes=5, update_batch_size=1, meta_batch_size=4, seed=0)
    base.update(kw)
    return Config(**base)


@pytest.fixture(scope='module')
def full(omniglot_dir):
    cfg = omni_config(data_dir=omniglot_dir)
    return DataGenerator(num_samples_per_class(cfg), cfg.meta_batch_size, cfg)


def first(ds, n=1):
    it = iter(ds)
    return [tuple(t.numpy() for t in next(it)) for _ in range(n)]


def one_line_error(fn, *needles):
    with pytest.raises(DataError) as e:
        fn()
    msg = str(e.value)
    assert '\n' not in msg and isinstance(e.value, ValueError)
    for needle in needles:
        assert needle in msg, msg
    return msg


# ---- sinusoid --------------------------------------------------------------------------------

def original_sinusoid(rng, b, s, input_idx=None):
    """The original generate_sinusoid_batch with np.random replaced by rng."""
    amp = rng.uniform(0.1, 5.0, [b])
    phase = rng.uniform(0, np.pi, [b])
    outputs, inputs = np.zeros([b, s, 1]), np.zeros([b, s, 1])
    for f in range(b):
        inputs[f] = rng.uniform(-5.0, 5.0, [s, 1])
        if input_idx is not None:
            inputs[:, input_idx:, 0] = np.linspace(-5.0, 5.0, num=s - input_idx, retstep=False)
        outputs[f] = amp[f] * np.sin(inputs[f] - phase[f])
    return inputs, outputs, amp, phase


def test_sinusoid_equals_original_formula_and_state_round_trip():
    cfg = Config(datasource='sinusoid', update_batch_size=5, meta_batch_size=7, seed=3)
    assert num_samples_per_class(cfg) == 10
    dg = DataGenerator(num_samples_per_class(cfg), 7, cfg)
    assert (dg.num_classes, dg.dim_input, dg.dim_output) == (1, 1, 1)
    ref = np.random.RandomState(3)
    for input_idx in (None, None, 4):
        got, want = dg.generate(train=True, input_idx=input_idx), original_sinusoid(ref, 7, 10, input_idx)
        for g, w in zip(got, want):
            assert g.dtype == np.float64
            np.testing.assert_array_equal(g, w)
    assert got[0].shape == (7, 10, 1) and got[2].shape == (7,)
    state = json.loads(json.dumps(dg.get_state()))
    nxt = dg.generate()
    dg2 = DataGenerator(10, 7, cfg.replace(seed=-1))
    dg2.set_state(state)
    for a, b in zip(dg2.generate(), nxt):
        np.testing.assert_array_equal(a, b)
    dg.rng = np.random.RandomState(1)  # main.py's test mode, as the original's np.random.seed(1)
    np.testing.assert_array_equal(dg.generate()[1], original_sinusoid(np.random.RandomState(1), 7, 10)[1])


def test_num_samples_per_class():
    c = Config(update_batch_size=3)
    assert num_samples_per_class(c.replace(datasource='omniglot')) == 6
    assert num_samples_per_class(c.replace(datasource='miniimagenet')) == 18
    assert num_samples_per_class(c.replace(datasource='miniimagenet', train=False)) == 6
    assert num_samples_per_class(c.replace(datasource='miniimagenet', num_query=2)) == 5
    assert num_samples_per_class(c.replace(datasource='omniglot', num_query=0)) == 3


# ---- Omniglot preprocessing --------------------------------------------------------------------

def test_pixel_parity_with_the_original_resize(omniglot_dir, full, tmp_path):
    for (split, char, fname), hexbits in PINNED.items():
        want = pinned_array(hexbits)
        with zipfile.ZipFile(os.path.join(omniglot_dir, split + '.zip')) as zf:
            png = zf.read(f'{split}/{char}/{fname}')
        # the literal recipe still gives the pinned pixels (guards Pillow / TF behaviour)
        path = tmp_path / 'x.png'
        path.write_bytes(png)
        Image.open(path).resize((28, 28), resample=Image.LANCZOS).save(path)
        x = 1.0 - tf.cast(tf.io.decode_png(tf.io.read_file(str(path))), tf.float32) / 255.0
        np.testing.assert_array_equal(x.numpy()[..., 0], want)
        # Pillow's finding: LANCZOS on a mode '1' image is NEAREST
        im = Image.open(io.BytesIO(png))
        assert im.mode == '1' and im.size == (105, 105)
        np.testing.assert_array_equal(np.asarray(im.resize((28, 28), resample=Image.LANCZOS)),
                                      np.asarray(im.resize((28, 28), resample=Image.NEAREST)))
        # ... and the in-memory data the generator samples from gives the same floats
        row = full.data.index(char, fname)
        np.testing.assert_array_equal(full.pixel_lut[full.data.images[row]], want)


def test_rotation_matches_tf_rot90(full):
    img = full.data.images[123]
    for k in range(4):
        want = tf.image.rot90(img[..., None], k=k).numpy()[..., 0].ravel()
        np.testing.assert_array_equal(img.ravel()[full.rot_index[k]], want)
        np.testing.assert_array_equal(np.rot90(img, k).ravel(), want)


# ---- splits ------------------------------------------------------------------------------------

def test_split_sizes_disjoint_and_as_the_original(omniglot_dir, full):
    assert (full.dim_input, full.dim_output, full.num_classes) == (784, 5, 5)
    assert len(full.data.names) == 1623 and full.data.images.shape == (32460, 28, 28)
    train, val = full.metatrain_character_folders, full.metaval_character_folders
    cfg = omni_config(data_dir=omniglot_dir, test_set=True)
    test = DataGenerator(2, 4, cfg).metaval_character_folders
    assert (len(train), len(val), len(test)) == (1100, 100, 423)
    assert len(set(train) | set(val) | set(test)) == 1623
    # the original's split after sorting the listing: random.seed(1); random.shuffle(folders)
    names = set()
    for split in ('images_background', 'images_evaluation'):
        with zipfile.ZipFile(os.path.join(omniglot_dir, split + '.zip')) as zf:
            names |= {'/'.join(m.split('/')[1:3]) for m in zf.namelist() if m.endswith('.png')}
    folders = sorted(names)
    random.seed(1)
    random.shuffle(folders)
    assert train == folders[:1100] and val == folders[1100:1200] and test == folders[1200:]


def test_determinism_across_constructions(omniglot_dir, full):
    cfg = omni_config(data_dir=omniglot_dir)
    again = DataGenerator(2, 4, cfg)  # from the cache written by the first construction
    assert again.metatrain_character_folders == full.metatrain_character_folders
    np.testing.assert_array_equal(again.data.images, full.data.images)
    a, b = first(full.make_data_tensor())[0], first(again.make_data_tensor())[0]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    key = full.get_state()['train_key']
    assert key == again.get_state()['train_key'] == DataGenerator(2, 4, cfg.replace(datasource='sinusoid'))._ensure_train_key()
    assert not np.array_equal(full.train_task_indices(0, key=key + 1)[0], full.train_task_indices(0)[0])


# ---- tasks -------------------------------------------------------------------------------------

def check_layout(dg, images, labels, img, lab, rot, split_classes):
    """Rows in blocks of N (each a permutation of the classes); a class = one character, one rotation."""
    n, s = dg.num_classes, dg.num_samples_per_class
    b = images.shape[0]
    assert images.shape == (b, n * s, 784) and labels.shape == (b, n * s, n)
    assert images.dtype == np.float32 and labels.dtype == np.float32
    np.testing.assert_array_equal(labels, np.eye(n, dtype=np.float32)[lab])
    char = np.searchsorted(dg.data.offsets, img, side='right') - 1
    for t in range(b):
        blocks = lab[t].reshape(s, n)
        for blk in blocks:
            assert sorted(blk) == list(range(n))
        for c in range(n):
            rows = lab[t] == c
            assert len(set(char[t][rows])) == 1 and len(set(rot[t][rows])) == 1   # a and b rows agree
            assert len(set(img[t][rows])) == s                                     # distinct images
            assert char[t][rows][0] in split_classes
        assert len(set(char[t])) == n
        for q in range(n * s):  # pixels: the image turned by tf.image.rot90, then 1 - x/255
            raw = dg.data.images[img[t, q]][..., None]
            want = 1.0 - tf.cast(tf.image.rot90(raw, k=int(rot[t, q])), tf.float32) / 255.0
            np.testing.assert_array_equal(images[t, q], want.numpy().ravel())


def test_train_task_layout_and_rotations(omniglot_dir):
    cfg = omni_config(data_dir=omniglot_dir, update_batch_size=2, num_classes=3, seed=5)
    dg = DataGenerator(num_samples_per_class(cfg), 3, cfg)
    images, labels = first(dg.make_data_tensor(train=True))[0]
    img, lab, rot = dg.train_task_indices(0)
    check_layout(dg, images, labels, img, lab, rot, set(dg._train_classes))
    rots = np.concatenate([dg.train_task_indices(j)[2] for j in range(30)])
    assert set(np.unique(rots)) == {0, 1, 2, 3}


def test_eval_tasks_fixed_rotated_and_cycling(full, omniglot_dir):
    ds = full.make_data_tensor(train=False)
    a, b = first(ds, 2), first(ds, 2)
    other = DataGenerator(2, 4, omni_config(data_dir=omniglot_dir, seed=-1))
    c = first(other.make_data_tensor(train=False), 2)
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x[0], y[0])
        np.testing.assert_array_equal(x[0], z[0])
        np.testing.assert_array_equal(x[1], z[1])
    img, lab, rot, cls = full.eval_tasks()
    assert img.shape == (600, 10) and cls.shape == (600, 5)
    assert set(np.unique(rot)) == {0, 1, 2, 3}                      # rotated in evaluation too
    assert set(np.unique(cls)) <= set(full._val_classes)
    check_layout(full, a[1][0], a[1][1], img[4:8], lab[4:8], rot[4:8], set(full._val_classes))
    # element j holds tasks j*B .. j*B+B-1 (mod 600): element 150 with B=4 is tasks 0..3 again
    it = iter(ds.skip(150))
    np.testing.assert_array_equal(next(it)[0].numpy(), a[0][0])


def test_state_round_trip_resumes_the_stream(omniglot_dir):
    cfg = omni_config(data_dir=omniglot_dir, seed=11)
    dg = DataGenerator(2, 4, cfg)
    it = iter(dg.make_data_tensor())
    for _ in range(3):
        next(it)
    state = json.loads(json.dumps(dg.get_state()))
    assert state['train_next'] == 3                                 # prefetching does not count
    want = [next(it) for _ in range(2)]
    resumed = DataGenerator(2, 4, cfg.replace(seed=-1))
    resumed.set_state(state)
    got = iter(resumed.make_data_tensor())
    for w in want:
        g = next(got)
        np.testing.assert_array_equal(g[0].numpy(), w[0].numpy())
        np.testing.assert_array_equal(g[1].numpy(), w[1].numpy())
    assert resumed.get_state()['train_next'] == 5


# ---- sources -----------------------------------------------------------------------------------

def _pick(omniglot_dir, split, alphabets, chars_per_alphabet=3):
    """{member: bytes} of a few characters of an official zip."""
    out = {}
    with zipfile.ZipFile(os.path.join(omniglot_dir, split + '.zip')) as zf:
        for m in zf.namelist():
            p = m.split('/')
            if len(p) == 4 and p[1] in alphabets and p[2] in [f'character{i:02d}' for i in range(1, chars_per_alphabet + 1)] \
                    and p[3].endswith('.png'):
                out[m] = zf.read(m)
    return out


@pytest.fixture(scope='module')
def small_official(omniglot_dir, tmp_path_factory):
    """Zipped, extracted and resized layouts of the same 12 characters (9 background, 3 evaluation)."""
    files = {**_pick(omniglot_dir, 'images_background', {'Korean', 'Greek', 'Latin'}),
             **_pick(omniglot_dir, 'images_evaluation', {'Tengwar'})}
    root = tmp_path_factory.mktemp('layouts')
    zipped, extracted, resized = root / 'zipped', root / 'extracted', root / 'omniglot_resized'
    for split in ('images_background', 'images_evaluation'):
        zipped.mkdir(exist_ok=True)
        with zipfile.ZipFile(zipped / (split + '.zip'), 'w') as zf:
            for m, data in files.items():
                if m.startswith(split + '/'):
                    zf.writestr(m, data)
    for m, data in files.items():
        for target, rel in ((extracted, m), (resized, m.split('/', 1)[1])):
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if target is resized:  # the original resize_images.py, in place
                Image.open(path).resize((28, 28), resample=Image.LANCZOS).save(path)
    return {'zipped': zipped, 'extracted': extracted, 'resized': resized, 'root': root}


def test_zip_extracted_and_resized_layouts_agree(small_official, monkeypatch):
    split = dict(num_train_classes=6, num_val_classes=3, num_classes=3)
    results = []
    for layout in ('zipped', 'extracted', 'resized'):
        cfg = omni_config(data_dir=str(small_official[layout]), **split)
        dg = DataGenerator(2, 2, cfg)
        results.append(dg)
        assert len(dg.data.names) == 12 and dg.data.images.shape == (240, 28, 28)
    for dg in results[1:]:
        assert dg.data.names == results[0].data.names and dg.data.files == results[0].data.files
        np.testing.assert_array_equal(dg.data.images, results[0].data.images)
        assert dg.metatrain_character_folders == results[0].metatrain_character_folders
    d0 = results[0].data
    assert d0.names[:2] == ['Greek/character01', 'Greek/character02'] and d0.index(d0.names[1], d0.files[25]) == 25
    # the default ./data/omniglot_resized (as the original) and --data_dir=parent
    monkeypatch.chdir(small_official['root'])
    os.makedirs('data', exist_ok=True)
    if not os.path.exists('data/omniglot_resized'):
        shutil.copytree(small_official['resized'], 'data/omniglot_resized')
    dg = DataGenerator(2, 2, omni_config(**split))
    np.testing.assert_array_equal(dg.data.images, results[0].data.images)
    dg = DataGenerator(2, 2, omni_config(data_dir='data', **split))
    assert dg.data.names == results[0].data.names
    one_line_error(lambda: DataGenerator(2, 2, omni_config(data_dir=str(small_official['zipped']))),
                   '--num_train_classes', '12 characters')


def _caches(d):
    return sorted(n for n in os.listdir(d) if n.startswith('maml_tf2_omniglot28_')) if os.path.isdir(d) else []


def test_cache_per_user_shared_by_symlinks_and_never_deletes_others(small_official, tmp_path, monkeypatch):
    """Issue 13: the cache goes to $XDG_CACHE_HOME/maml-tf2, never beside the (writable) data; a
    symlinked and a direct path to the same data share one cache; other keys' caches survive."""
    split = dict(num_train_classes=6, num_val_classes=3, num_classes=3)
    monkeypatch.delenv(data_generator.CACHE_ENV)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    cache = tmp_path / 'xdg' / 'maml-tf2'
    data = tmp_path / 'data'
    shutil.copytree(small_official['zipped'], data)          # a writable data folder
    (tmp_path / 'link').symlink_to(data, target_is_directory=True)
    first_dg = DataGenerator(2, 2, omni_config(data_dir=str(data), **split))
    assert sorted(os.listdir(data)) == sorted(os.listdir(small_official['zipped']))   # nothing written there
    assert len(_caches(cache)) == 1 and not [n for n in os.listdir(cache) if n.endswith('.tmp')]
    with monkeypatch.context() as m:   # the symlinked path reads that cache: no decoding
        m.setattr(data_generator, '_load_files', lambda *a: pytest.fail('rebuilt the cache for a symlinked path'))
        again = DataGenerator(2, 2, omni_config(data_dir=str(tmp_path / 'link'), **split))
    np.testing.assert_array_equal(again.data.images, first_dg.data.images)
    assert len(_caches(cache)) == 1
    other = DataGenerator(2, 2, omni_config(data_dir=str(small_official['extracted']), **split))
    assert len(_caches(cache)) == 2                          # the first key's cache is still there
    np.testing.assert_array_equal(other.data.images, first_dg.data.images)
    monkeypatch.setenv(data_generator.CACHE_ENV, str(tmp_path / 'mine'))   # relocated
    DataGenerator(2, 2, omni_config(data_dir=str(data), **split))
    assert len(_caches(tmp_path / 'mine')) == 1 and sorted(os.listdir(data)) == sorted(os.listdir(small_official['zipped']))


def test_impossible_task_sizes_are_named(omniglot_dir):
    """Issue 13: K + query over the 20 drawings per character is not 'incomplete data'."""
    msg = one_line_error(lambda: DataGenerator(30, 4, omni_config(data_dir=omniglot_dir, update_batch_size=15)),
                         'K=15 support + 15 query = 30', 'only 20 drawings per character',
                         '--update_batch_size', '--num_query', 'K + query <= 20')
    assert 'incomplete' not in msg
    one_line_error(lambda: data_generator.check_sizes('miniimagenet', 616, 601), 'K=601 support + 15 query = 616',
                   'only 600 images per class')
    data_generator.check_sizes('omniglot', 20, 10)         # the largest possible task is fine


def test_small1_alone_needs_split_flags(omniglot_dir, tmp_path, monkeypatch):
    data = tmp_path / 'data'
    data.mkdir()
    os.symlink(os.path.join(omniglot_dir, 'images_background_small1.zip'), data / 'images_background_small1.zip')
    one_line_error(lambda: DataGenerator(2, 4, omni_config(data_dir=str(data))),
                   '--num_train_classes', 'images_evaluation')
    # the data folder is never written to: the cache goes to $XDG_CACHE_HOME/maml-tf2
    monkeypatch.delenv(data_generator.CACHE_ENV)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'home_cache'))
    os.chmod(data, 0o555)
    try:
        dg = DataGenerator(2, 4, omni_config(data_dir=str(data), num_train_classes=80, num_val_classes=20,
                                             test_set=True))
    finally:
        os.chmod(data, 0o755)
    assert os.listdir(data) == ['images_background_small1.zip']
    assert len(os.listdir(tmp_path / 'home_cache' / 'maml-tf2')) == 1
    n = len(dg.data.names)
    assert (len(dg.metatrain_character_folders), len(dg.metaval_character_folders)) == (80, n - 100)
    images, labels = first(dg.make_data_tensor())[0]
    assert images.shape == (4, 10, 784) and labels.shape == (4, 10, 5)


def test_missing_or_incomplete_data_errors(tmp_path, small_official, monkeypatch):
    one_line_error(lambda: DataGenerator(2, 4, omni_config(data_dir=str(tmp_path / 'nope'))),
                   'is not a folder', 'images_background.zip')
    (tmp_path / 'empty').mkdir()
    one_line_error(lambda: DataGenerator(2, 4, omni_config(data_dir=str(tmp_path / 'empty'))),
                   'no Omniglot data', 'images_evaluation.zip')
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'images_background.zip').write_bytes(b'not a zip')
    one_line_error(lambda: DataGenerator(2, 4, omni_config(data_dir=str(bad))), 'not a readable zip')
    short = tmp_path / 'short'
    shutil.copytree(small_official['resized'], short)
    for f in sorted(os.listdir(short / 'Korean' / 'character02'))[1:]:
        os.remove(short / 'Korean' / 'character02' / f)
    one_line_error(lambda: DataGenerator(2, 4, omni_config(data_dir=str(short), num_train_classes=9,
                                                           num_val_classes=3, num_classes=3)),
                   'Korean/character02 has 1', 'incomplete')
    # nothing anywhere: ./data is empty, no prepared TFDS copy and no network
    monkeypatch.chdir(tmp_path / 'empty')
    monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'tfds'))
    monkeypatch.setattr(data_generator, '_online', lambda *a, **k: False)
    one_line_error(lambda: DataGenerator(2, 4, omni_config()), 'images_background.zip', './data/omniglot')
    one_line_error(lambda: DataGenerator(2, 4, omni_config(datasource='mnist')), 'unknown --datasource')


def test_tensorflow_datasets_source(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds
    rng = np.random.RandomState(0)
    examples = []
    for alphabet in range(3):
        for char in range(4):
            for _ in range(3):
                img = np.where(rng.rand(105, 105) < 0.1, 0, 255).astype(np.uint8)
                examples.append({'image': np.repeat(img[..., None], 3, axis=2), 'alphabet': alphabet,
                                 'alphabet_char_id': char, 'label': alphabet * 4 + char})

    def as_dataset(self, *args, **kwargs):
        return tf.data.Dataset.from_generator(
            lambda: iter(examples),
            output_signature={'image': tf.TensorSpec((105, 105, 3), tf.uint8), 'alphabet': tf.TensorSpec((), tf.int64),
                              'alphabet_char_id': tf.TensorSpec((), tf.int64), 'label': tf.TensorSpec((), tf.int64)})

    monkeypatch.chdir(tmp_path)                      # no ./data/omniglot: falls back to TFDS
    monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'tfds'))
    monkeypatch.setattr(data_generator, '_online', lambda *a, **k: True)
    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        dg = DataGenerator(2, 2, omni_config(num_train_classes=8, num_val_classes=2, num_classes=2))
    assert len(dg.data.names) == 12 and dg.data.images.shape == (36, 28, 28)
    assert dg.data.names[:2] == ['0/character01', '0/character02']
    want = np.asarray(Image.fromarray(examples[0]['image'][..., 0] > 127).resize((28, 28), Image.LANCZOS),
                      dtype=np.uint8) * 255
    np.testing.assert_array_equal(dg.data.images[0], want)
    images, labels = first(dg.make_data_tensor())[0]
    assert images.shape == (2, 4, 784) and labels.shape == (2, 4, 2)


# ---- data modes of the other learners (issues 14, 15) ------------------------------------------

def test_train_classes_sets_the_ways_of_meta_training_only(omniglot_dir, small_official):
    cfg = omni_config(data_dir=omniglot_dir, num_classes=3, train_classes=7, seed=2)
    dg = DataGenerator(2, 3, cfg, train_samples_per_class=3)
    assert (dg.num_classes_for(True), dg.num_classes_for(False), dg.dim_output) == (7, 3, 3)
    assert (dg.samples_per_class_for(True), dg.samples_per_class_for(False)) == (3, 2)
    images, labels = first(dg.make_data_tensor(train=True))[0]
    assert images.shape == (3, 21, 784) and labels.shape == (3, 21, 7)
    img, lab, rot = dg.train_task_indices(0)
    np.testing.assert_array_equal(labels, np.eye(7, dtype=np.float32)[lab])
    for t in range(3):
        assert all(sorted(blk) == list(range(7)) for blk in lab[t].reshape(3, 7))
    char = np.searchsorted(dg.data.offsets, img, side='right') - 1
    assert set(char.ravel()) <= set(dg._train_classes)
    images, labels = first(dg.make_data_tensor(train=False))[0]
    assert images.shape == (3, 6, 784) and labels.shape == (3, 6, 3)
    # train_classes == num_classes is the default stream, bit for bit
    a = first(DataGenerator(2, 3, omni_config(data_dir=omniglot_dir, num_classes=3, seed=2)).make_data_tensor())[0]
    b = first(DataGenerator(2, 3, omni_config(data_dir=omniglot_dir, num_classes=3, train_classes=3,
                                              seed=2)).make_data_tensor())[0]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    one_line_error(lambda: DataGenerator(2, 2, omni_config(data_dir=str(small_official['zipped']), num_classes=3,
                                                           train_classes=7, num_train_classes=6, num_val_classes=3)),
                   'meta-train split has 6 classes', '--train_classes=7')


def _rows_of(dg, images, labels, classes):
    """(image row, quarter turns) of each example of a class batch, found by its pixels among the
    images of the class its label names ((character, quarter turns) in `classes`)."""
    out = []
    for x, y in zip(images, labels):
        assert y.sum() == 1
        c, k = classes[int(np.argmax(y))]
        rows = np.arange(dg.data.offsets[c], dg.data.offsets[c + 1])
        cand = dg.pixel_lut[np.rot90(dg.data.images[rows], k, axes=(1, 2)).reshape(len(rows), -1)]
        hit = rows[np.all(cand == x, axis=1)]
        assert len(hit) == 1
        out.append((int(hit[0]), k))
    return out


def test_class_batches_cover_each_train_example_once_per_epoch_and_resume(small_official):
    cfg = omni_config(data_dir=str(small_official['zipped']), num_train_classes=6, num_val_classes=3,
                      num_classes=3, seed=4)
    dg = DataGenerator(2, 2, cfg)
    assert dg.num_train_classes_total == 24                         # 6 characters x 4 rotations
    classes = [(c, k) for c in dg._train_classes for k in range(4)]
    it = iter(dg.make_class_batches(50))
    batches = [tuple(t.numpy() for t in next(it)) for _ in range(5)]
    state = json.loads(json.dumps(dg.get_state()))
    assert state['class_next'] == 250                               # prefetching does not count
    batches += [tuple(t.numpy() for t in next(it)) for _ in range(5)]
    assert batches[0][0].shape == (50, 784) and batches[0][1].shape == (50, 24)
    seen = [r for x, y in batches for r in _rows_of(dg, x, y, classes)]
    train_rows = {(r, k) for c in dg._train_classes for r in range(dg.data.offsets[c], dg.data.offsets[c + 1])
                  for k in range(4)}
    assert len(train_rows) == 480 and sorted(seen[:480]) == sorted(train_rows)   # epoch 0: each once
    assert seen[480:] != seen[:20]                                  # epoch 1: a new order
    resumed = DataGenerator(2, 2, cfg.replace(seed=-1))
    resumed.set_state(state)
    got = iter(resumed.make_class_batches(50))
    for want in batches[5:]:                                        # exact, across the epoch boundary
        x, y = next(got)
        np.testing.assert_array_equal(x.numpy(), want[0])
        np.testing.assert_array_equal(y.numpy(), want[1])
    assert resumed.get_state()['class_next'] == 500
    # the episodic stream is untouched by the class stream (same train_key, same meta-batches)
    fresh = DataGenerator(2, 2, cfg)
    np.testing.assert_array_equal(fresh.train_task_indices(0)[0], dg.train_task_indices(0)[0])


# ---- the Reptile protocol (openai/supervised-reptile omniglot.py) -------------------------------


@pytest.fixture(scope='module')
def reptile_golden():
    from conftest import SHARED, _require
    path = _require(os.path.join(SHARED, 'golden', 'reptile', 'reptile_omniglot_5w1s_step.npz'))
    with np.load(path) as z:
        return {k: z[k] for k in ('train_sources_json', 'eval_sources_json', 'task_images', 'task_labels',
                                  'eval/task_images', 'eval/task_labels')}


def test_reptile_split_sampler_and_pixels_match_the_golden(omniglot_dir, reptile_golden):
    """The golden's setup: random.seed(0), split, then train_step's 5 tasks (5 classes x 10 shots,
    each followed by _mini_batches' one shuffle of its 50 samples), then evaluate's 5-way 2-shot test
    task. Classes, rotations, labels and batch orders come out exactly; the files drawn depend on the
    reference machine's os.listdir order, so they match once that order is set (set_listing_order)."""
    cfg = omni_config(data_dir=omniglot_dir, protocol='reptile', seed=0)
    dg = DataGenerator(2, 5, cfg)
    assert (len(dg.reptile_train), len(dg.reptile_test), dg.num_train_classes_total) == (4800, 423, 4800)
    names = dg.data.names
    train_chars, test_chars = {names[c] for c, _ in dg.reptile_train}, {names[c] for c, _ in dg.reptile_test}
    assert len(train_chars) == 1200 and not train_chars & test_chars
    gold = json.loads(str(reptile_golden['train_sources_json']))
    gold_eval = json.loads(str(reptile_golden['eval_sources_json']))
    state = dg.get_state()
    for listing_set in (False, True):
        dg.set_state(state)
        for k, task in enumerate(gold):
            src = task['sources']
            before = dg.py_rng.getstate()
            rows, rots, labels = dg.sample_mini_dataset_indices(5, 10)
            assert [(names[int(np.searchsorted(dg.data.offsets, r, 'right') - 1)], 90 * int(q), int(l))
                    for r, q, l in zip(rows, rots, labels)] == [(s['char_dir'], s['rotation'], s['label']) for s in src]
            assert {s['char_dir'] for s in src} <= train_chars
            if not listing_set:   # the picked listing positions give the reference's listing order
                for c in range(5):
                    ch = names.index(src[10 * c]['char_dir'])
                    pos = rows[10 * c:10 * c + 10] - dg.data.offsets[ch]
                    files = dg.data.files[dg.data.offsets[ch]:dg.data.offsets[ch + 1]]
                    listing = [None] * len(files)
                    for p, s in zip(pos, src[10 * c:10 * c + 10]):
                        listing[p] = s['file']
                    rest = iter(f for f in files if f not in listing)
                    dg.set_listing_order(src[10 * c]['char_dir'], [f or next(rest) for f in listing])
            else:
                assert [dg.data.files[r] for r in rows] == [s['file'] for s in src]
                dg.py_rng.setstate(before)
                images, labels2 = dg.sample_mini_dataset(5, 10)
                np.testing.assert_array_equal(images, reptile_golden['task_images'][k])
                np.testing.assert_array_equal(labels2, reptile_golden['task_labels'][k])
            order = list(range(50))                                 # _mini_batches: one epoch of 50
            dg.py_rng.shuffle(order)
            assert np.reshape(order, (5, 10)).tolist() == task['batches']
        rows, rots, labels = dg.sample_mini_dataset_indices(5, 2, train=False)
        assert [names[int(np.searchsorted(dg.data.offsets, r, 'right') - 1)] for r in rows] == \
            [s['char_dir'] for s in gold_eval['sources']]
        assert not rots.any() and labels.tolist() == [s['label'] for s in gold_eval['sources']]
        assert {s['char_dir'] for s in gold_eval['sources']} <= test_chars
    # the decoding of every image the golden names (its eval task included) is exact
    for src, want in ((gold[0]['sources'], reptile_golden['task_images'][0]),
                      (gold_eval['sources'], reptile_golden['eval/task_images'])):
        rows = [dg.data.index(s['char_dir'], s['file']) for s in src]
        got = dg.reptile_images(rows, [s['rotation'] // 90 for s in src])
        assert got.dtype == np.float32 and set(np.unique(got)) == {0.0, 1.0}
        np.testing.assert_array_equal(got, want)


def test_reptile_state_round_trip_and_errors(omniglot_dir):
    cfg = omni_config(data_dir=omniglot_dir, protocol='reptile', seed=3)
    dg = DataGenerator(2, 5, cfg)
    dg.sample_mini_dataset(5, 10)
    state = json.loads(json.dumps(dg.get_state()))
    want = dg.sample_mini_dataset(20, 2, train=False)
    other = DataGenerator(2, 5, cfg.replace(seed=7))
    assert other.metaval_character_folders != dg.metaval_character_folders   # the split depends on the seed
    other = DataGenerator(2, 5, cfg)
    other.set_state(state)
    got = other.sample_mini_dataset(20, 2, train=False)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    one_line_error(lambda: dg.sample_mini_dataset(5, 21), '21 shots', '20 drawings per character')
    one_line_error(lambda: dg.sample_mini_dataset(424, 1, train=False), 'split of 423')
    one_line_error(lambda: dg.make_data_tensor(), '--protocol=maml', 'sample_mini_dataset')
    x, y = first(dg.make_class_batches(8))[0]
    assert x.shape == (8, 784) and y.shape == (8, 4800) and set(np.unique(x)) <= {0.0, 1.0}
