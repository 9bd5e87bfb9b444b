#!/usr/bin/env python3
"""Turns the Ravi & Larochelle MiniImagenet release into the folder layout the original MAML used.

    python scripts/make_miniimagenet.py SRC DST

SRC holds `images/` (the JPEGs) and `train.csv`, `val.csv`, `test.csv` (`filename,label`). DST gets
`train/`, `val/`, `test/`, each with one folder per class of 84x84 JPEGs, made as the original's
`proc_images.py` did: `Image.open(f).resize((84, 84), resample=Image.LANCZOS)` and saved as JPEG with
Pillow's defaults (quality 75). Unlike that script it never edits SRC, runs no shell commands,
writes each file atomically (temporary file + rename) and skips files that already exist, so it
can be interrupted and run again. Progress goes to stderr. Needs only Pillow (no TensorFlow).
"""
import argparse
import csv
import os
import sys
import tempfile
import time

SPLITS = ('train', 'val', 'test')
SIZE = (84, 84)
TMP_PREFIX = '.make_miniimagenet-'


class ConvertError(Exception):
    """Bad input; the message is one line saying what is wrong and how to fix it."""


def read_split(src, split):
    """[(filename, label)] of SRC/split.csv, header skipped."""
    path = os.path.join(src, split + '.csv')
    if not os.path.isfile(path):
        raise ConvertError(f'{path} is missing: SRC must hold images/ and train.csv, val.csv, test.csv '
                           f'(Ravi & Larochelle)')
    rows = []
    with open(path, newline='') as f:
        for i, row in enumerate(csv.reader(f)):
            if not row or (i == 0 and row[0].strip().lower() == 'filename'):
                continue
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                raise ConvertError(f'{path} line {i + 1} is not "filename,label"')
            name, label = row[0].strip(), row[1].strip()
            for part in (name, label):
                if os.sep in part or part in ('.', '..') or (os.altsep and os.altsep in part):
                    raise ConvertError(f'{path} line {i + 1}: {part!r} is not a plain file or class name')
            rows.append((name, label))
    return rows


def convert_image(src_path, dst_path):
    """Resizes one image to 84x84 (LANCZOS, RGB) and writes it as JPEG, atomically."""
    from PIL import Image
    d = os.path.dirname(dst_path)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix='.jpg', dir=d)
    try:
        with os.fdopen(fd, 'wb') as f, Image.open(src_path) as im:
            if im.mode != 'RGB':
                im = im.convert('RGB')
            im.resize(SIZE, resample=Image.LANCZOS).save(f, format='JPEG')
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dst_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def convert(src, dst, log=None, every=1000):
    """Converts SRC (images/ + CSVs) into DST/{train,val,test}/<label>/<file>; returns counts.

    Returns {'converted': n, 'skipped': n (already there)}. Raises ConvertError on bad input.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    images = os.path.join(src, 'images')
    if not os.path.isdir(images):
        raise ConvertError(f'{images} is missing: SRC must hold images/ and train.csv, val.csv, test.csv')
    if os.path.abspath(src) == os.path.abspath(dst):
        raise ConvertError('DST must differ from SRC (SRC is never modified)')
    splits = {s: read_split(src, s) for s in SPLITS}
    seen = {}
    for s, rows in splits.items():
        for name, _ in rows:
            if name in seen and seen[name] != s:
                raise ConvertError(f'{name} is listed in both {seen[name]}.csv and {s}.csv')
            seen[name] = s
    missing = [n for n in seen if not os.path.isfile(os.path.join(images, n))]
    if missing:
        raise ConvertError(f'{len(missing)} images listed in the CSVs are not in {images}, e.g. {missing[0]}')
    total = len(seen)
    done = converted = skipped = 0
    start = time.time()
    for s in SPLITS:
        for label in sorted({label for _, label in splits[s]}):
            d = os.path.join(dst, s, label)
            os.makedirs(d, exist_ok=True)
            for old in os.listdir(d):  # left by an interrupted run
                if old.startswith(TMP_PREFIX):
                    os.remove(os.path.join(d, old))
        for name, label in splits[s]:
            out = os.path.join(dst, s, label, name)
            if os.path.isfile(out):
                skipped += 1
            else:
                try:
                    convert_image(os.path.join(images, name), out)
                except OSError as e:
                    raise ConvertError(f'cannot convert {os.path.join(images, name)}: {e}') from None
                converted += 1
            done += 1
            if done % every == 0 or done == total:
                rate = done / max(time.time() - start, 1e-9)
                log(f'{done}/{total} images ({converted} converted, {skipped} already there), {rate:.0f}/s')
    log(f'done: {dst} has ' + ', '.join(f'{s}: {len({l for _, l in splits[s]})} classes, {len(splits[s])} images'
                                         for s in SPLITS))
    return {'converted': converted, 'skipped': skipped}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src', help='folder with images/ and train.csv, val.csv, test.csv (Ravi & Larochelle)')
    p.add_argument('dst', help='output folder, e.g. ./data/miniImagenet (train/ val/ test/ are made in it)')
    p.add_argument('--every', type=int, default=1000, help='report progress every this many images')
    args = p.parse_args(argv)
    try:
        convert(args.src, args.dst, every=max(1, args.every))
    except ConvertError as e:
        print(f'make_miniimagenet: error: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('make_miniimagenet: interrupted; run it again to finish (finished files are kept)', file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
