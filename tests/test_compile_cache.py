"""infra/compile_cache.py: TensorFlow's persistent XLA cache turned on under the logs folder.

The pure parts against known bytes and strings (the entry check, the flag quoting, the machine key); then, in
fresh processes, that a second process loads what the first compiled, bit for bit, that an entry cut short is
dropped and compiled again instead of failing the call, and that the flag set after TensorFlow initialised its
devices has no effect (what makes `enable` return None then).
"""
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO
from infra import compile_cache


def _field(number, payload):
    """A length-delimited protocol-buffer field (payloads < 128 bytes)."""
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


ENTRY = _field(1, b'key') + _field(2, b'hlo module') + bytes([3 << 3 | 0, 1]) + _field(3, b'machine code')


def test_complete_entry_needs_every_byte_and_the_executable():
    assert compile_cache.complete_entry(ENTRY)
    for cut in range(len(ENTRY)):                 # cut short anywhere, also at a field boundary
        assert not compile_cache.complete_entry(ENTRY[:cut]), cut
    assert not compile_cache.complete_entry(_field(1, b'key') + _field(2, b'hlo'))     # no executable
    assert not compile_cache.complete_entry(ENTRY[:-13] + _field(3, b''))               # an empty one
    assert not compile_cache.complete_entry(b'key {\n  prefix: "x"\n}\n')               # a text proto
    assert not compile_cache.complete_entry(ENTRY + b'\x0d')                           # a 32-bit field


def test_drop_incomplete_deletes_only_entries_cut_short(tmp_path):
    whole = tmp_path / 'xla_compile_cache__1__2__XLA_CPU_JIT.pb'
    cut = tmp_path / 'xla_compile_cache__3__4__XLA_CPU_JIT.pb'
    other = tmp_path / 'notes.pb'
    whole.write_bytes(ENTRY)
    cut.write_bytes(ENTRY[:-3])
    other.write_bytes(b'')
    assert compile_cache.drop_incomplete(str(tmp_path)) == [str(cut)]
    assert sorted(os.listdir(tmp_path)) == sorted([whole.name, other.name])
    assert compile_cache.drop_incomplete(str(tmp_path / 'missing')) == []


@pytest.mark.parametrize('directory', ['/logs/.xla_cache/tf2.21.0-0123456789ab', '/my logs/a "b" c\\d'])
def test_cache_flag_is_quoted_as_tensorflow_parses_it(directory):
    flags = compile_cache.with_cache_flag('--tf_xla_auto_jit=2', directory)
    assert flags.startswith('--tf_xla_auto_jit=2 --tf_xla_persistent_cache_directory="')
    assert compile_cache.configured_dir(flags) == directory
    assert compile_cache.with_cache_flag('', '/x') == '--tf_xla_persistent_cache_directory="/x"'
    assert compile_cache.configured_dir('--tf_xla_persistent_cache_directory=/a/b --x=1') == '/a/b'
    assert compile_cache.configured_dir('--tf_xla_auto_jit=2') is None


CPUINFO = 'processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx fma avx2\n\nprocessor\t: 1\n' \
          'model name\t: AMD EPYC 7B13\nflags\t\t: fpu avx fma avx2\n'


def test_machine_key_separates_instruction_sets_versions_and_xla_flags():
    key = compile_cache.machine_key(CPUINFO, '2.21.0', '')
    assert key.startswith('tf2.21.0-') and len(key) == len('tf2.21.0-') + 12
    assert compile_cache.machine_key(CPUINFO.replace('fpu avx fma avx2', 'avx2 fma fpu avx'), '2.21.0', '') == key
    assert compile_cache.machine_key(CPUINFO, '2.21.0', '  ') == key
    others = {compile_cache.machine_key(CPUINFO.replace('avx2', 'avx2 avx512f'), '2.21.0', ''),
              compile_cache.machine_key(CPUINFO.replace('7B13', '9654'), '2.21.0', ''),
              compile_cache.machine_key(CPUINFO, '2.20.0', ''),
              compile_cache.machine_key(CPUINFO, '2.21.0', '--xla_cpu_enable_fast_math=true')}
    assert len(others) == 4 and key not in others


def test_enable_sets_the_flag_once_and_not_when_disabled(tmp_path, monkeypatch):
    monkeypatch.delenv('TF_XLA_FLAGS', raising=False)
    monkeypatch.setattr(compile_cache, 'tensorflow_initialized', lambda: False)
    assert compile_cache.enable(str(tmp_path), disabled=True) is None and 'TF_XLA_FLAGS' not in os.environ
    directory = compile_cache.enable(str(tmp_path))
    assert directory == os.path.join(str(tmp_path), '.xla_cache', compile_cache.machine_key())
    assert not os.path.exists(directory)   # TensorFlow creates it at its first write: a failed start leaves nothing
    assert compile_cache.configured_dir(os.environ['TF_XLA_FLAGS']) == directory
    assert compile_cache.enable(str(tmp_path / 'other')) == directory        # the flag in force is kept
    monkeypatch.setenv('TF_XLA_FLAGS', '--tf_xla_auto_jit=2')
    monkeypatch.setattr(compile_cache, 'tensorflow_initialized', lambda: True)
    assert compile_cache.enable(str(tmp_path)) is None and os.environ['TF_XLA_FLAGS'] == '--tf_xla_auto_jit=2'


def test_load_notice_is_recognised():
    line = ('E0000 00:00:1796665434.484966   12281 text_format.cc:378] Error parsing text-format '
            'tensorflow.XlaSerializedCacheEntry: 2:1: Expected identifier, got: 4')
    assert compile_cache.LOAD_NOISE.match(line)
    assert not compile_cache.LOAD_NOISE.match(line.replace('XlaSerializedCacheEntry', 'GraphDef'))
    assert not compile_cache.LOAD_NOISE.match('main.py: error: ' + line)


PROBE = textwrap.dedent('''
    import glob, os, sys
    sys.path.insert(0, {repo!r})
    from infra import compile_cache
    directory = compile_cache.enable(sys.argv[1]) if sys.argv[2] == 'before' else None
    import tensorflow as tf
    x = tf.constant([0.5, 1.5, 2.5])
    if sys.argv[2] == 'after_devices':
        os.environ['TF_XLA_FLAGS'] = compile_cache.with_cache_flag('', compile_cache.cache_dir(sys.argv[1]))
        directory = compile_cache.cache_dir(sys.argv[1])
    f = tf.function(lambda x: tf.reduce_sum(tf.sin(x) * tf.exp(x) + x ** 3), jit_compile=True)
    print(f(x).numpy().tobytes().hex(), len(glob.glob(os.path.join(directory, '*.pb'))))
''').format(repo=REPO)


def _probe(logdir, when='before'):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='0', TF_CPP_VMODULE='device_executable_persistor=1')
    env.pop('TF_XLA_FLAGS', None)
    proc = subprocess.run([sys.executable, '-c', PROBE, logdir, when], capture_output=True, text=True, timeout=600,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    value, entries = proc.stdout.split()
    return value, int(entries), 'Loading cached entry for: ' in proc.stderr


def test_a_second_process_loads_the_executable(tmp_path):
    logdir = str(tmp_path / 'logs dir')     # a space, quoted in TF_XLA_FLAGS
    value, entries, loaded = _probe(logdir)
    assert entries == 1 and not loaded
    assert _probe(logdir) == (value, 1, True)                          # bit for bit what the compile gave
    (entry,) = [os.path.join(compile_cache.cache_dir(logdir), n) for n in os.listdir(compile_cache.cache_dir(logdir))]
    with open(entry, 'r+b') as f:                                        # a write cut short
        f.truncate(os.path.getsize(entry) // 2)
    assert _probe(logdir) == (value, 1, False)                          # dropped, compiled and written again
    assert _probe(logdir) == (value, 1, True)


def test_the_flag_is_ignored_once_tensorflow_has_devices(tmp_path):
    value, entries, loaded = _probe(str(tmp_path), when='after_devices')
    assert entries == 0 and not loaded


def _main(logdir, *args):
    """Runs main.py on a tiny sinusoid run in `logdir`, TensorFlow logging which cache entries it loads (seen with
    --verbose); returns (stderr, the cache entries under logdir)."""
    env = {k: v for k, v in os.environ.items() if k != 'TF_XLA_FLAGS'}
    env.update(TF_CPP_MIN_LOG_LEVEL='0', TF_CPP_VMODULE='device_executable_persistor=1')
    proc = subprocess.run([sys.executable, os.path.join(REPO, 'main.py'), '--datasource=sinusoid',
                           '--meta_batch_size=2', '--update_batch_size=5', '--logdir=' + logdir, *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    entries = sorted((os.path.relpath(os.path.join(d, n), logdir), os.path.getmtime(os.path.join(d, n)))
                     for d, _, names in os.walk(logdir) for n in names if n.startswith(compile_cache.ENTRY_PREFIX))
    return proc.stderr, entries


def test_main_keeps_what_it_compiles_in_the_logdir_and_a_later_run_loads_it(tmp_path):
    """--xla_cache=False writes no cache; by default main.py keeps what XLA compiles in
    <logdir>/.xla_cache/<machine key>, and a later run that traces the same functions under the same names (here a
    second resume: a first resume traces one more function before the step, the checkpoint's restore, so its step's
    name differs from a fresh run's) compiles nothing new and shows no load notice."""
    logdir = str(tmp_path / 'logs')
    _, none = _main(logdir, '--metatrain_iterations=2', '--xla_cache=False')
    assert none == [] and not os.path.exists(os.path.join(logdir, '.xla_cache'))
    _, first = _main(logdir, '--metatrain_iterations=4')
    assert first and all(path.startswith(os.path.join('.xla_cache', compile_cache.machine_key()) + os.sep)
                         for path, _ in first)
    stderr, second = _main(logdir, '--metatrain_iterations=6', '--verbose')
    assert second == first                     # the same entries, none written again
    assert 'Loading cached entry for: __inference__metatrain_step' in stderr


def test_main_hides_the_load_notice():
    from infra import quiet
    notice = ('E0000 00:00:1796665434.484966   12281 text_format.cc:378] Error parsing text-format '
              'tensorflow.XlaSerializedCacheEntry: 2:1: Expected identifier, got: 4')
    assert quiet.drop_lines([notice, 'Iteration 100: 0.5, 0.4']) == ['Iteration 100: 0.5, 0.4']
