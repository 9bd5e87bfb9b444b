"""What main.py hides from a run's stderr unless --verbose: TensorFlow's start-up lines that say nothing about the
run, and XLA's slow-compile banner ("Very slow compile? If you want to file a bug ..."), which looks like a crash
while the first iteration compiles (main.py says itself that it is compiling, and for how long it took last time).
Everything else written to stderr passes unchanged.
"""
import atexit
import os
import re
import sys
import tempfile
import threading

from infra.compile_cache import LOAD_NOISE

# TensorFlow's start-up lines (hidden unless --verbose): absl's notice, the C++ INFO / WARNING lines (oneDNN, CUDA
# stubs, CPU features, XLA service) and the failed cuInit of a machine without a GPU.
TF_NOISE = re.compile(r'^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR'
                      r'|[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] .*'
                      r'|E\d{4} [\d:.]+ +\d+ cuda_\w+\.cc:\d+\] failed call to cuInit.*'
                      r'|To enable the following instructions: .*)$')
# XLA's slow-compile banner: `E... slow_operation_alarm.cc:73] `, a line of '*', `[Compiling module M] Very slow
# compile? ...`, a line of '*' (and the same after `The operation took 2m12s`). No XLA flag turns it off.
XLA_BANNER = re.compile(r'slow_operation_alarm\.cc:\d+\]|Very slow compile\?')


class LineFilter:
    """keep(line) -> False for TF_NOISE, the XLA cache's load notice and XLA's banner (a banner line, and the blank
    or all-'*' lines after one)."""

    def __init__(self):
        self.banner = False

    def keep(self, line):
        if TF_NOISE.match(line) or LOAD_NOISE.match(line) or XLA_BANNER.search(line):
            self.banner = bool(XLA_BANNER.search(line))
            return False
        if self.banner and set(line.strip()) <= {'*'}:
            return False
        self.banner = False
        return True


def drop_lines(lines):
    """The lines of `lines` (str, without newlines) that LineFilter keeps."""
    keep = LineFilter().keep
    return [line for line in lines if keep(line)]


def filter_stderr():
    """From now on, until the process exits, what anything (Python or C++) writes to file descriptor 2 goes through
    `drop_lines`, line by line, to the real stderr. An atexit handler restores fd 2 and passes on what is left."""
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        keep = LineFilter().keep
        with os.fdopen(read_end, 'rb') as src:
            for raw in src:
                if keep(raw.decode(errors='replace').rstrip('\n')):
                    os.write(real, raw)
    thread = threading.Thread(target=pump, name='stderr-filter', daemon=True)
    thread.start()

    def restore():
        sys.stderr.flush()
        os.dup2(real, 2)       # the pipe's last write end closes: the pump reads to its end and stops
        thread.join(timeout=5)
    atexit.register(restore)


def import_tensorflow(verbose=False, cpu_devices=1, multi_worker=False):
    """Imports TensorFlow and initialises its devices; returns the module.

    Unless `verbose`: sets TF_CPP_MIN_LOG_LEVEL=2 (C++ errors only; a value the user set is kept) and
    drops TF_NOISE lines from what the import writes to stderr (caught at the file descriptor, as
    the C++ libraries write there before any setting applies); any other line is passed on.
    `cpu_devices` > 1: the CPU is split into that many logical devices first (`--cpu_devices`). `multi_worker`:
    creates the process's MultiWorkerMirroredStrategy from TF_CONFIG before the devices (it must come first; it
    waits for every worker of the cluster); raises distribute.Error for a TF_CONFIG it cannot use.
    """
    from infra import distribute as distribute_lib
    if verbose or 'tensorflow' in sys.modules:
        import tensorflow as tf
        if multi_worker:
            distribute_lib.start_multi_worker()
        return tf
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    with tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow as tf
            if cpu_devices != 1:
                distribute_lib.split_cpu(cpu_devices)
            if multi_worker:
                distribute_lib.start_multi_worker()
            tf.config.list_logical_devices()    # device initialisation (cuInit) logs here
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in drop_lines(caught.read().decode(errors='replace').splitlines()):
                print(line, file=sys.stderr)
    return tf
