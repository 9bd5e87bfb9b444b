"""Any TensorFlow Datasets image-classification set (`--datasource=tfds:NAME`, `--tfds_data_dir=DIR`).

The data must be prepared already (or manually downloaded into DIR/downloads/manual where the builder asks for
that): nothing is downloaded here. The examples of all of the dataset's splits are pooled and grouped by their
class label (TFDS's train/test splits divide examples; few-shot splits divide classes), then split into
train/val/test classes as folder data is (datasources/folder.py): --class_split_file (e.g. CIFAR-FS or FC100
over cifar100), else --class_split's fractions, shuffled with a fixed seed.
"""
import logging

import numpy as np

from datasources import folder
from datasources.common import DataError

log = logging.getLogger('data_generator')


def _first_line(e):
    return f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'


def _features(info, name):
    """(image key, label key, label names) of a dataset's features: the image feature (Image) and the class
    label (ClassLabel, 'label' when there are several)."""
    import tensorflow_datasets as tfds
    feats = info.features
    images = [k for k, f in feats.items() if isinstance(f, tfds.features.Image)]
    labels = [k for k, f in feats.items() if isinstance(f, tfds.features.ClassLabel)]
    if not images or not labels:
        raise DataError(f'tfds:{name} is not an image-classification dataset (features: {", ".join(feats)}); '
                        f'it needs an Image and a ClassLabel feature')
    label = 'label' if 'label' in labels else labels[0]
    image = 'image' if 'image' in images else images[0]
    return image, label, list(feats[label].names)


class TfdsSource:
    """The examples of a prepared TFDS dataset, grouped by class: names [C] (the ClassLabel names), and
    examples {name: [uint8 arrays [H, W, C]]}."""

    def __init__(self, config):
        try:
            import tensorflow_datasets as tfds
        except ImportError:
            raise DataError('--datasource=tfds:NAME needs tensorflow_datasets; pip install tensorflow-datasets') \
                from None
        name = config.datasource[len('tfds:'):]
        self.what = f'tfds:{name}' + (f' in {config.tfds_data_dir}' if config.tfds_data_dir else '')
        data_dir = config.tfds_data_dir or None
        try:
            builder = tfds.builder(name, data_dir=data_dir)
        except Exception as e:
            raise DataError(f'no TFDS dataset {name!r} ({_first_line(e)}); give the name of a prepared dataset '
                            f'and --tfds_data_dir=DIR where it is') from None
        if not builder.is_prepared():
            try:   # a dataset with manually downloaded files (DIR/downloads/manual) is prepared from them here
                builder.download_and_prepare()
            except Exception as e:
                raise DataError(f'{self.what} is not prepared and could not be prepared here ({_first_line(e)}); '
                                f'prepare it where it can be downloaded (tfds build {name}) and pass '
                                f'--tfds_data_dir=DIR') from None
        image_key, label_key, label_names = _features(builder.info, name)
        splits = list(builder.info.splits)
        try:
            ds = builder.as_dataset(split='+'.join(splits), shuffle_files=False)
            examples = {}
            for ex in tfds.as_numpy(ds):
                examples.setdefault(int(ex[label_key]), []).append(np.asarray(ex[image_key], np.uint8))
        except Exception as e:
            raise DataError(f'cannot read {self.what} ({_first_line(e)}); prepare it again') from None
        if not examples:
            raise DataError(f'{self.what} has no examples; prepare it again')
        self.names = [label_names[i] if i < len(label_names) else str(i) for i in sorted(examples)]
        self.examples = {self.names[j]: examples[i] for j, i in enumerate(sorted(examples))}
        log.info('tfds: %d examples of %d classes from %s (splits %s)', sum(map(len, examples.values())),
                 len(examples), self.what, '+'.join(splits))

    def load(self, names, config):
        """folder.ImageSet of the classes `names` (in that order) at --img_size / --channels (or the images')."""
        from PIL import Image
        shapes = [(f'{self.what} class {n!r} example {i}', (a.shape[1], a.shape[0]), a.shape[2] if a.ndim == 3 else 1)
                  for n in names for i, a in enumerate(self.examples[n])]
        size, channels = folder.resolve_shape(config, shapes, self.what)
        images = np.empty((len(shapes), size, size, channels), np.uint8)
        sources, offsets, i = [], [0], 0
        for n in names:
            for j, a in enumerate(self.examples[n]):
                a = a[..., 0] if a.ndim == 3 and a.shape[2] == 1 else a
                images[i] = folder.pixels(Image.fromarray(a), size, channels)
                sources.append(f'{n}/{j}')
                i += 1
            offsets.append(i)
        return folder.ImageSet(names, images, offsets, sources)
