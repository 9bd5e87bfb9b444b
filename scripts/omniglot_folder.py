"""Omniglot's PNGs as a plain folder tree, for `--datasource=folder` (the "your own data" check of docs/RESULTS.md).

    python scripts/omniglot_folder.py ../shared/data/omniglot DST

writes DST/{train,val,test}/<alphabet>__<character>/<file>.png from images_background.zip and
images_evaluation.zip, split as the built-in Omniglot source splits the characters (the original's: sorted,
`random.Random(1).shuffle`, then 1100 / 100 / the rest), so that a folder run meets the same test characters.
The images are copied as they are: no inversion, no rotation (the built-in source adds both). DST is written under
DST.partial and renamed at the end, so an interrupted run leaves no half tree at DST.
"""
import argparse
import os
import random
import shutil
import sys
import zipfile

ZIPS = ('images_background', 'images_evaluation')
SPLIT = (('train', 1100), ('val', 100))   # the rest is test


def characters(src):
    """{(alphabet, character): [(zip name, member)]} of the PNGs in SRC's two zips."""
    chars = {}
    for name in ZIPS:
        with zipfile.ZipFile(os.path.join(src, name + '.zip')) as zf:
            for member in zf.namelist():
                parts = member.split('/')
                if parts and parts[0] == name:
                    parts = parts[1:]
                if len(parts) == 3 and parts[2].lower().endswith('.png') and not parts[2].startswith('.'):
                    chars.setdefault((parts[0], parts[1]), []).append((name, member))
    return chars


def split_of(keys):
    """{key: 'train' | 'val' | 'test'} for the sorted character keys, as the built-in source splits them."""
    order = list(range(len(keys)))
    random.Random(1).shuffle(order)
    split, start = {}, 0
    for name, size in SPLIT:
        for i in order[start:start + size]:
            split[keys[i]] = name
        start += size
    for i in order[start:]:
        split[keys[i]] = 'test'
    return split


def write_tree(src, dst):
    """Writes the tree; returns {split: number of characters}."""
    chars = characters(src)
    keys = sorted(chars)
    split = split_of(keys)
    tmp = dst + '.partial'
    shutil.rmtree(tmp, ignore_errors=True)
    zips = {name: zipfile.ZipFile(os.path.join(src, name + '.zip')) for name in ZIPS}
    for key in keys:
        folder = os.path.join(tmp, split[key], key[0] + '__' + key[1])
        os.makedirs(folder, exist_ok=True)
        for name, member in chars[key]:
            with open(os.path.join(folder, os.path.basename(member)), 'wb') as out:
                out.write(zips[name].read(member))
    os.rename(tmp, dst)
    return {s: sum(1 for v in split.values() if v == s) for s in ('train', 'val', 'test')}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('src', help='the folder holding images_background.zip and images_evaluation.zip')
    p.add_argument('dst', help='the tree to write (must not exist)')
    args = p.parse_args(argv)
    if os.path.exists(args.dst):
        sys.exit(f'omniglot_folder.py: error: {args.dst} exists; choose a new folder')
    missing = [n + '.zip' for n in ZIPS if not os.path.isfile(os.path.join(args.src, n + '.zip'))]
    if missing:
        sys.exit(f'omniglot_folder.py: error: {args.src} has no {", ".join(missing)}; pass the Omniglot folder')
    print(write_tree(args.src, args.dst))


if __name__ == '__main__':
    main()
