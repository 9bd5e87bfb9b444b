"""The data sources, one module each; data_generator.DataGenerator serves them to main.py.

    common.py        DataError (one-line messages) and the folder listing every source shares
    episodes.py      the stateless N-way task sampler of the image sources and the fixed 600 evaluation tasks
    sinusoid.py      the paper's sinusoid regression
    omniglot.py      Omniglot: official zips / folders / tensorflow_datasets, decoded once and cached
    miniimagenet.py  MiniImagenet: class folders of JPEGs or the Ravi & Larochelle CSVs
"""
from datasources.common import DataError  # noqa: F401
