"""scripts/omniglot_folder.py: Omniglot as a plain folder tree, split as the built-in source splits it."""
import os
import sys
import zipfile

import pytest

from conftest import REPO
from config import Config
import data_generator

sys.path.insert(0, os.path.join(REPO, 'scripts'))
import omniglot_folder  # noqa: E402


def test_the_split_is_the_built_in_sources(omniglot_dir):
    keys = sorted(omniglot_folder.characters(omniglot_dir))
    split = omniglot_folder.split_of(keys)
    built_in = data_generator.DataGenerator(5, 1, Config(datasource='omniglot', data_dir=omniglot_dir, num_classes=5))
    assert sorted('/'.join(k) for k in keys if split[k] == 'train') == sorted(built_in.metatrain_character_folders)
    test = data_generator.DataGenerator(5, 1, Config(datasource='omniglot', data_dir=omniglot_dir, num_classes=5,
                                                     test_set=True))
    assert sorted('/'.join(k) for k in keys if split[k] == 'test') == sorted(test.metaval_character_folders)
    assert [sum(1 for v in split.values() if v == s) for s in ('train', 'val', 'test')] == [1100, 100, 423]


def test_the_tree_holds_every_png_under_its_split(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    for name, alphabet in (('images_background', 'A'), ('images_evaluation', 'B')):
        with zipfile.ZipFile(src / (name + '.zip'), 'w') as zf:
            for c in range(2):
                for i in range(3):
                    zf.writestr(f'{name}/{alphabet}/character{c:02d}/{c}_{i:02d}.png', f'{alphabet}{c}{i}')
            zf.writestr(f'{name}/{alphabet}/.DS_Store', 'x')
    omniglot_folder.SPLIT, saved = (('train', 2), ('val', 1)), omniglot_folder.SPLIT
    try:
        counts = omniglot_folder.write_tree(str(src), str(tmp_path / 'tree'))
    finally:
        omniglot_folder.SPLIT = saved
    assert counts == {'train': 2, 'val': 1, 'test': 1} and not os.path.exists(tmp_path / 'tree.partial')
    found = {os.path.relpath(os.path.join(d, f), tmp_path / 'tree') for d, _, fs in os.walk(tmp_path / 'tree') for f in fs}
    assert len(found) == 12
    some = next(p for p in found if p.endswith('B__character01/1_02.png'))
    assert (tmp_path / 'tree' / some).read_text() == 'B12'
    with pytest.raises(SystemExit, match='exists; choose a new folder'):
        omniglot_folder.main([str(src), str(tmp_path / 'tree')])
