"""What every data source shares: DataError and the folder listing."""
import os


class DataError(ValueError):
    """The data is missing or unusable. The message is one line: what is wrong and how to fix it."""


def _visible_dirs(path):
    return sorted(n for n in os.listdir(path)
                  if not n.startswith('.') and os.path.isdir(os.path.join(path, n)))
