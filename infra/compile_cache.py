"""TensorFlow's persistent XLA compilation cache, on by default under the logs folder (issue 28).

With `TF_XLA_FLAGS=--tf_xla_persistent_cache_directory=DIR`, TensorFlow's XLA JIT (the `jit_compile=True`
functions: the meta-train step, `evaluate`) writes each executable it compiles to DIR and, in a later process,
loads it instead of compiling again when the function's HLO and signature are the same: measured on the CPU with
TensorFlow 2.21 in docs/SPEED.md (first call of the Omniglot step in a fraction of the CPU seconds, results bit
for bit those of a compile). What a later process still pays: tracing the Python function and lowering it to HLO
(the cache key is a hash of that HLO, checked in full on load).

Three properties of TensorFlow's cache that this module works around:
- TensorFlow reads TF_XLA_FLAGS once, when it initialises its devices (the first op, or infra.quiet.import_tensorflow's
  device listing), not at `import tensorflow`: set later, the flag is ignored for the rest of the process.
  `enable` is therefore called before import_tensorflow, and does nothing once TensorFlow is initialised.
- Its key holds no CPU features, TensorFlow version or XLA_FLAGS, but the executable is machine code for this
  CPU: each machine key (`machine_key`) gets its own subfolder, so a logs folder copied to another machine
  compiles afresh there instead of loading code for another instruction set.
- An entry it cannot read fails the call (OutOfRangeError: "Read less bytes than requested"), it does not
  compile instead; and it writes entries in place, not atomically, so a process killed while writing leaves such
  an entry. `drop_incomplete` deletes entries that are not whole before TensorFlow sees them (`enable` runs it).
"""
import hashlib
import os
import platform
import re
import sys

CACHE_DIR = '.xla_cache'                          # under --logdir
FLAG = '--tf_xla_persistent_cache_directory'
ENTRY_PREFIX = 'xla_compile_cache'                # TensorFlow's default --tf_xla_persistent_cache_prefix
# What TensorFlow prints on stderr at each cache load, at C++ level ERROR (so TF_CPP_MIN_LOG_LEVEL=2 shows it): it
# first tries the entry as a text proto and logs that this failed, then reads it as binary, which works. Harmless;
# main.py's stderr filter (infra/quiet.py) should drop it with the start-up lines.
LOAD_NOISE = re.compile(r'^E\d{4} [\d:.]+ +\d+ text_format\.cc:\d+\] Error parsing text-format '
                        r'tensorflow\.XlaSerializedCacheEntry: .*$')


def _tensorflow_version():
    try:
        from importlib import metadata
        return metadata.version('tensorflow')
    except Exception:     # not installed as a distribution (a source build): the key still separates machines
        return 'unknown'


def _cpu_text():
    try:
        with open('/proc/cpuinfo') as f:
            return f.read()
    except OSError:
        return platform.processor() or platform.machine()


def machine_key(cpuinfo=None, tf_version=None, xla_flags=None):
    """'tf<version>-<12 hex digits>': the TensorFlow version and a hash of what the compiled code depends on
    besides the HLO: the CPU (model name and flags of /proc/cpuinfo's first processor; `cpuinfo`: that file's
    text, read when None) and XLA_FLAGS (`xla_flags`, read from the environment when None). The cache subfolder's
    name; computed without importing TensorFlow."""
    cpuinfo = _cpu_text() if cpuinfo is None else cpuinfo
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(':')
        key = key.strip()
        if key in ('model name', 'flags') and key not in fields:
            fields[key] = ' '.join(sorted(value.split())) if key == 'flags' else value.strip()
    if not fields:                # not a /proc/cpuinfo text (another OS): the whole text
        fields['cpu'] = cpuinfo.strip()
    xla_flags = os.environ.get('XLA_FLAGS', '') if xla_flags is None else xla_flags
    text = '\n'.join(f'{k}={v}' for k, v in sorted(fields.items())) + '\nXLA_FLAGS=' + ' '.join(xla_flags.split())
    version = _tensorflow_version() if tf_version is None else tf_version
    return f'tf{version}-{hashlib.sha256(text.encode()).hexdigest()[:12]}'


def cache_dir(logdir):
    """The cache folder of this machine under `logdir`: `<logdir>/.xla_cache/<machine_key()>`."""
    return os.path.join(logdir, CACHE_DIR, machine_key())


def tensorflow_initialized():
    """Whether this process's TensorFlow has initialised its eager context (and so read TF_XLA_FLAGS for good)."""
    context = sys.modules.get('tensorflow.python.eager.context')
    ctx = getattr(context, '_context', None)
    return bool(ctx is not None and getattr(ctx, '_initialized', False))


def configured_dir(tf_xla_flags):
    """The directory a TF_XLA_FLAGS value sets with --tf_xla_persistent_cache_directory (quotes removed), or None."""
    flags = tf_xla_flags or ''
    start = flags.find(FLAG + '=')
    if start < 0:
        return None
    value = flags[start + len(FLAG) + 1:]
    if value[:1] in ('"', "'"):
        quote, out, i = value[0], [], 1
        while i < len(value) and value[i] != quote:
            if quote == '"' and value[i] == '\\' and i + 1 < len(value):
                i += 1
            out.append(value[i])
            i += 1
        return ''.join(out)
    return value.split()[0] if value.split() else ''


def with_cache_flag(tf_xla_flags, directory):
    """`tf_xla_flags` (a TF_XLA_FLAGS value, may be empty) with `--tf_xla_persistent_cache_directory="<directory>"`
    appended, the value double-quoted with `\\` and `"` escaped, as TensorFlow's flag parser reads it (so a
    path with spaces survives)."""
    quoted = '"' + directory.replace('\\', '\\\\').replace('"', '\\"') + '"'
    return ' '.join(part for part in ((tf_xla_flags or '').strip(), f'{FLAG}={quoted}') if part)


def _varint(data, i):
    """(value, index after it) of the protocol-buffer varint at data[i]; IndexError past the end."""
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def complete_entry(data):
    """Whether `data` is a whole XlaSerializedCacheEntry as TensorFlow writes it: top-level fields that end exactly
    at the end of the data, with a non-empty field 3 (`executable`, written last after 1 `key` and 2
    `hlo_module`). False for an entry cut short anywhere, an empty file and bytes of another format."""
    i, executable = 0, False
    try:
        while i < len(data):
            key, i = _varint(data, i)
            number, wire_type = key >> 3, key & 7
            if wire_type == 0:
                _, i = _varint(data, i)
            elif wire_type == 2:
                size, i = _varint(data, i)
                if i + size > len(data):
                    return False
                executable = executable or (number == 3 and size > 0)
                i += size
            else:             # TensorFlow's entry has only varints and length-delimited fields
                return False
    except IndexError:
        return False
    return executable


def drop_incomplete(directory):
    """Deletes the cache entries in `directory` (`xla_compile_cache*.pb`) that are not whole (`complete_entry`: a
    write cut short) and returns their paths; TensorFlow would fail the call that reads one instead of
    compiling. A missing directory has none. Entries it cannot delete are left (the run fails as it would have)."""
    dropped = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return dropped
    for name in names:
        path = os.path.join(directory, name)
        if not (name.startswith(ENTRY_PREFIX) and name.endswith('.pb')) or not os.path.isfile(path):
            continue
        try:
            with open(path, 'rb') as f:
                data = f.read()
            if complete_entry(data):
                continue
            os.remove(path)
            dropped.append(path)
        except OSError:
            continue
    return dropped


def enable(logdir, disabled=False):
    """Turns TensorFlow's persistent XLA compilation cache on for this process (and the processes it starts) by
    adding --tf_xla_persistent_cache_directory to TF_XLA_FLAGS; returns the cache directory in use, or None.

    The directory is `cache_dir(logdir)` (`<logdir>/.xla_cache/<machine key>`), with entries cut short deleted
    (`drop_incomplete`); TensorFlow creates it when it first writes an entry, so that a run that stops at a usage
    or data error leaves nothing behind. Returns None without changing anything when `disabled` (main.py's flag
    to turn it off) or when TensorFlow is already initialised in this process (it has read TF_XLA_FLAGS; a later
    change has no effect). A directory the user set in TF_XLA_FLAGS is kept and returned (cleaned the same way).
    """
    if disabled:
        return None
    current = os.environ.get('TF_XLA_FLAGS', '')
    user_dir = configured_dir(current)
    if user_dir:
        drop_incomplete(user_dir)
        return user_dir
    if tensorflow_initialized():
        return None
    directory = cache_dir(logdir)
    drop_incomplete(directory)
    os.environ['TF_XLA_FLAGS'] = with_cache_flag(current, directory)
    return directory

