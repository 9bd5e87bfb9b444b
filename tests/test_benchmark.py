"""scripts/benchmark.py: runs end to end on the smallest settings and writes its JSON and Markdown.

Timings are never asserted (they depend on the machine and its load); only that every field is
there, finite and consistent, and that the FLOP counter and the peak formula compute what they say.
"""
import json
import math
import os
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, 'scripts'))
import benchmark  # noqa: E402

SCRIPT = os.path.join(REPO, 'scripts', 'benchmark.py')
TIMING_FIELDS = ('first_call_s', 'median_s', 'q1_s', 'q3_s', 'iqr_s', 'min_s', 'max_s', 'cpu_s', 'peak_memory_mb')


def _check_timing(r, repeats):
    assert 'error' not in r, r.get('error')
    for key in TIMING_FIELDS:
        assert math.isfinite(r[key]) and r[key] >= 0, key
    assert len(r['times_s']) == repeats
    assert r['min_s'] <= r['q1_s'] <= r['median_s'] <= r['q3_s'] <= r['max_s']
    assert r['finite']


def test_sinusoid_all_fields(tmp_path):
    """Setting d in two modes, each in its own process, as the default run does."""
    out_json, out_md = tmp_path / 'bench.json', tmp_path / 'bench.md'
    proc = subprocess.run([sys.executable, SCRIPT, 'd', '--modes', 'xla', 'xla_loop', 'tf1', '--repeats', '2',
                           '--steps-per-execution', '5',
                           '--warmup', '1', '--json', str(out_json), '--markdown', str(out_md)],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out_json.read_text())
    for key in ('date', 'command', 'machine', 'tensorflow', 'peak_gflops', 'peak_assumption', 'flops_method',
                'loadavg_start', 'loadavg_end', 'results', 'flops'):
        assert key in report, key
    assert report['machine']['cores'] >= 1 and report['peak_gflops'] > 0
    assert report['flops']['d']['flops'] > 0
    assert report['matmul_gflops']['tf'] > 0 and report['matmul_gflops']['xla'] > 0
    results = {r['mode']: r for r in report['results']}
    assert set(results) == {'xla', 'xla_loop', 'tf1'}
    for mode, r in results.items():
        _check_timing(r, 2)
        assert r['setting'] == 'd' and r['tf1_s'] == pytest.approx(0.0167) and r['goal_factor'] == 5
        assert r['ratio_tf1_over_ours'] == pytest.approx(r['tf1_s'] / r['median_s'])
        assert r['goal_met'] == (r['median_s'] <= r['tf1_s'] / 5)
        assert r['ratio_tf1_rebuild_over_ours'] == pytest.approx(results['tf1']['median_s'] / r['median_s'])
        assert r['gflops'] == pytest.approx(r['flops_per_iter'] / 1e9 / r['median_s'])
        assert 0 < r['pct_of_peak'] == pytest.approx(100 * r['gflops'] / report['peak_gflops'])
        assert r['goal_gflops'] == pytest.approx(r['flops_per_iter'] / 1e9 / (0.0167 / 5))
    assert results['xla']['shapes'] == {'inputa': [25, 10, 1], 'inputb': [25, 10, 1]}
    # the compiled modes: the cost of a call apart from its work, per meta-iteration (a loop call runs 5)
    assert results['xla']['steps_per_call'] == 1 and results['xla_loop']['steps_per_call'] == 5
    for r in (results['xla'], results['xla_loop']):
        assert r['dispatch_s'] > 0 and r['copy_s'] > 0
        assert r['dispatch_share'] == pytest.approx((r['dispatch_s'] + r['copy_s']) / r['median_s'])
    assert 'dispatch_s' not in results['tf1']

    table = out_md.read_text()
    assert '| setting | mode |' in table and report['peak_assumption'] in table
    assert report['machine']['vector_extensions'] in table and 'AVX-512' in report['machine']['vector_extensions']
    assert f"machine: {benchmark.machine_line(report['machine'])}" in proc.stderr
    rows = [line for line in table.splitlines() if line.startswith('| d |')]
    assert [row.split('|')[2].strip() for row in rows[:3]] == ['xla', 'xla_loop', 'tf1']
    assert rows[0].split('|')[-3].strip() == f"{100 * results['xla']['dispatch_share']:.0f} %"
    assert rows[0].split('|')[-2].strip() == '1' and results['xla']['ratio_xla_over_this'] == 1
    assert results['xla_loop']['ratio_xla_over_this'] == pytest.approx(
        results['xla']['median_s'] / results['xla_loop']['median_s'])
    need = [cell.strip() for cell in rows[3].split('|')]   # what the goal needs, vs the peak and matmul rates
    goal_gflops = results['xla']['goal_gflops']
    assert len(rows) == 4 and need[2:8] == [
        benchmark._fmt(report['flops']['d']['flops'] / 1e9), benchmark._fmt(0.0167 / 5),
        benchmark._fmt(goal_gflops), benchmark._fmt(100 * goal_gflops / report['peak_gflops'], 2),
        benchmark._fmt(goal_gflops / report['matmul_gflops']['tf'], 2),
        benchmark._fmt(goal_gflops / report['matmul_gflops']['xla'], 2)]


def test_tiny_conv_in_process(tmp_path):
    """A small conv net (second order, batch norm) in this process, without FLOP counting, in two precisions."""
    out_json = tmp_path / 'tiny.json'
    assert benchmark.main(['tiny', '--modes', 'function', '--repeats', '1', '--warmup', '0', '--no-isolate',
                           '--no-flops', '--task-groups', '2', '--precision', 'float32', 'bfloat16',
                           '--json', str(out_json), '--markdown', str(tmp_path / 'tiny.md')]) == 0
    results = json.loads(out_json.read_text())['results']
    assert [r['precision'] for r in results] == ['float32', 'bfloat16']
    for r in results:
        _check_timing(r, 1)
        assert r['task_groups'] == 2
        assert r['tf1_s'] is None and r['goal_met'] is None and 'gflops' not in r
        assert r['shapes']['inputa'] == [2, 5, 784]
    table = (tmp_path / 'tiny.md').read_text()
    assert '| tiny | function |' in table and '| tiny | function bfloat16 |' in table


def test_batches_have_the_original_layout():
    inputa, labela, inputb, labelb = benchmark.make_batch(benchmark.SETTINGS['c'])
    assert inputa.shape == (4, 5, 21168) and inputb.shape == (4, 75, 21168)
    assert labelb.shape == (4, 75, 5) and (labelb.sum(-1) == 1).all()
    assert (labelb[0, :10].argmax(-1) == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]).all()   # blocks of N rows
    assert str(inputa.dtype) == 'float32'


def test_hlo_flops_counts_dots_and_convolutions():
    hlo = '\n'.join([
        'ENTRY %main {',
        '  %p0 = f32[32,245,576]{2,1,0} parameter(0)',
        '  %p1 = f32[32,576,64]{2,1,0} parameter(1)',
        '  %x = f32[8,28,28,1]{3,2,1,0} parameter(2)',
        '  %k = f32[3,3,1,64]{3,2,1,0} parameter(3)',
        '  %d = f32[32,245,64]{2,1,0} dot(%p0, %p1), lhs_batch_dims={0}, lhs_contracting_dims={2}, '
        'rhs_batch_dims={0}, rhs_contracting_dims={1}',
        '  ROOT %c = f32[8,14,14,64]{3,2,1,0} convolution(%x, %k), window={size=3x3 stride=2x2}, '
        'dim_labels=b01f_01io->b01f',
        '}'])
    flops, by_op = benchmark.hlo_flops(hlo)
    assert by_op == {'dot': 2 * 32 * 245 * 64 * 576, 'convolution': 2 * 8 * 14 * 14 * 64 * 9}
    assert flops == sum(by_op.values())


def test_peak_formula():
    info = {'cores': 2, 'mhz': 2000.0, 'flags': {'avx512f', 'fma'}, 'model': 'x'}
    peak, text = benchmark.cpu_peak(info)
    assert peak == 2 * 2 * 16 * 2 * 2.0 and '256 GFLOP/s' in text
    assert benchmark.cpu_peak(dict(info, flags={'fma'}))[0] == 128


FAKE_CPUINFO = """processor	: 0
vendor_id	: AuthenticAMD
model name	: AMD EPYC 7B13
cpu MHz		: 2450.000
flags		: fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2 sha_ni
processor	: 1
model name	: AMD EPYC 7B13
cpu MHz		: 2999.000
flags		: fpu avx512f
"""


def test_cpuinfo_names_the_vector_extensions():
    """The first processor's model, MHz and flags; AVX2 without AVX-512 as on the 2-core EPYC of issue 28."""
    info = benchmark.parse_cpuinfo(FAKE_CPUINFO)
    assert info['model'] == 'AMD EPYC 7B13' and info['mhz'] == 2450.0 and 'avx512f' not in info['flags']
    assert benchmark.vector_extensions(info['flags']) == 'AVX, AVX2, FMA, no AVX-512, no AMX'
    xeon = {'avx', 'avx2', 'fma', 'avx512f', 'avx512dq', 'avx512cd', 'avx512bw', 'avx512vl', 'avx512_vnni',
            'avx512_bf16', 'amx_tile', 'amx_bf16', 'amx_int8'}
    assert benchmark.vector_extensions(xeon) == \
        'AVX, AVX2, FMA, AVX-512 (f dq cd bw vl vnni bf16), AMX (tile bf16 int8)'
    assert benchmark.vector_extensions({'sse2'}) == 'no AVX, no AVX-512, no AMX'
    assert benchmark.vector_extensions(set()) == 'vector extensions unknown (no CPU flags)'
    assert benchmark.parse_cpuinfo('') == {'model': None, 'mhz': None, 'flags': set()}
    machine = {'cpu_model': 'AMD EPYC 7B13', 'cores': 2, 'cpu_mhz': 2450.0}
    assert benchmark.machine_line(dict(machine, vector_extensions='AVX2, FMA, no AVX-512, no AMX')) == \
        'AMD EPYC 7B13, 2 cores, 2450.0 MHz reported, AVX2, FMA, no AVX-512, no AMX'
    assert benchmark.machine_line(machine).endswith('vector extensions not recorded')   # an older report's JSON


def test_unknown_setting_is_a_usage_error():
    with pytest.raises(SystemExit):
        benchmark.parse_args(['e'])


def test_peers_in_a_lower_precision_are_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        benchmark.parse_args(['d', '--modes', 'xla', 'tf1', '--precision', 'bfloat16'])
    assert 'modes tf1 run in float32 only' in capsys.readouterr().err
    assert benchmark.parse_args(['d', '--modes', 'xla', '--precision', 'float32', 'float16']).precision == [
        'float32', 'float16']


@pytest.mark.slow
def test_profile_step_names_the_kinds_of_ops():
    """scripts/profile_step.py on the tiny setting: per-kind busy times, all matrix products under `dot`."""
    proc = subprocess.run([sys.executable, os.path.join(REPO, 'scripts', 'profile_step.py'), 'tiny', '--steps', '2'],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3',
                                   XLA_FLAGS='--xla_cpu_enable_xprof_traceme=true'))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith('setting tiny, mean of 2 steps: ') and 'cores busy' in lines[0]
    kinds = [line.split()[-1] for line in lines[1:]]
    assert 'dot' in kinds and not any(k.startswith(('MatMul', 'dot.', 'dot_')) for k in kinds)
    shares = [float(line.split()[2]) for line in lines[1:]]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 100.01


@pytest.mark.slow
def test_profile_step_first_call_with_the_xla_cache(tmp_path):
    """profile_step.py --first-call on tiny, twice with the persistent XLA cache: the first process writes one
    entry, the second loads it (no new entry) and computes the same objectives and weights to the bit."""
    def run():
        proc = subprocess.run([sys.executable, os.path.join(REPO, 'scripts', 'profile_step.py'), 'tiny',
                               '--first-call', '--xla-cache', str(tmp_path)], capture_output=True, text=True,
                              timeout=1800, env={k: v for k, v in os.environ.items() if k != 'TF_XLA_FLAGS'})
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines = proc.stdout.splitlines()
        assert [line.split(':')[0] for line in lines[:4]] == ['import', 'trace', 'first_call', 'next_3']
        assert lines[4].startswith('traced 1 time(s); objectives ') and len(lines[4].split()) == 11
        return lines[4], lines[5]
    result, cache = run()
    assert 'entries before [], after [(\'xla_compile_cache__' in cache and cache.count('xla_compile_cache__') == 1
    again, cache_again = run()
    assert again == result
    entries = cache_again.split('entries before ')[1]
    before, after = entries.split(', after ')
    assert before == after and before.count('xla_compile_cache__') == 1
