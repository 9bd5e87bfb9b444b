"""scripts/report.py: the Markdown results table from synthetic logs, exactly; agreement rule; bad input."""
import csv
import importlib.util
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

SCRIPT = os.path.join(REPO, 'scripts', 'report.py')
sys.path.insert(0, os.path.join(REPO, 'scripts'))
spec = importlib.util.spec_from_file_location('report', SCRIPT)
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)
reproduce = report.reproduce

MACHINE = {'cpu': 'Test CPU', 'logical_cpus': 2, 'avx512': True, 'virtual_machine': True, 'gpu': 'none',
           'tensorflow': '2.21.0 (tensorflow)', 'python': '3.11.7', 'os': 'Linux'}


def write_csv(path, mean, ci):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['update' + str(i) for i in range(len(mean))])
        w.writerow(mean)
        w.writerow([10 * c for c in ci])        # std: not used by the report
        w.writerow(ci)


def write_checkpoint(exp_dir, itr, mtime):
    os.makedirs(exp_dir, exist_ok=True)
    with open(os.path.join(exp_dir, 'checkpoint'), 'w') as f:
        f.write(f'model_checkpoint_path: "model{itr}"\nall_model_checkpoint_paths: "model{itr}"\n')
    index = os.path.join(exp_dir, f'model{itr}.index')
    open(index, 'w').close()
    os.utime(index, (mtime, mtime))


def session(phase, start, end, wall, **extra):
    return {'phase': phase, 'command': 'python main.py ...', 'git_commit': 'abc1234', 'start': start, 'end': end,
            'wall_s': wall, 'returncode': 0 if end else None, **extra}


def synthetic_logs(root):
    """Four experiments: sinusoid K=5 done, Omniglot 5-way without run.json, 20-way trained on after its
    test, MiniImagenet interrupted before its test."""
    logs = root / 'logs'
    # sine_k5_maml: trained 70000 iterations and tested
    sine = logs / 'sine_k5_maml' / 'cls_5.mbs_25.ubs_5.numstep1.updatelr0.01nonorm'
    write_checkpoint(str(sine), 69999, 1000)
    write_csv(str(sine / 'test_ubs5_stepsize0.01.csv'),
              [3.0, 0.5, 0.45, 0.4, 0.39, 0.38, 0.37, 0.36, 0.35, 0.34, 0.36],
              [0.2, 0.05, 0.04, 0.03, 0.03, 0.031, 0.03, 0.02, 0.02, 0.02, 0.02])
    rows = np.array([[12.5] + [0.1] * 10, [2.0] + [0.2] * 10, [1.0] + [0.3] * 10, [4.0] + [0.4] * 10])
    rows[1, 10] = np.nan
    rows[2, 9:] = 50.0
    with open(sine / 'test_ubs5_stepsize0.01.pkl', 'wb') as f:
        pickle.dump({'mses': rows}, f)
    (logs / 'sine_k5_maml' / 'run.json').write_text(json.dumps({
        'experiment': 'sine_k5_maml', 'smoke': False, 'machine': MACHINE,
        'train_command': 'python main.py --datasource=sinusoid --logdir=logs/sine_k5_maml',
        'test_command': 'python main.py --datasource=sinusoid --logdir=logs/sine_k5_maml --train=False',
        'exp_dir': 'sine_k5_maml/cls_5.mbs_25.ubs_5.numstep1.updatelr0.01nonorm',
        'test_csv': 'sine_k5_maml/cls_5.mbs_25.ubs_5.numstep1.updatelr0.01nonorm/test_ubs5_stepsize0.01.csv',
        'planned_iterations': 70000, 'notes': ['A note.'],
        'sessions': [session('train', '2026-01-01T00:00:00+00:00', '2026-01-01T00:10:00+00:00', 600.0,
                             iterations_before=0, iterations_after=70000, load_average_start=[1.04, 1, 1],
                             load_average_end=[2.0, 1, 1]),
                     session('test', '2026-01-01T00:10:00+00:00', '2026-01-01T00:10:20+00:00', 20.4,
                             checkpoint='model69999', iterations=70000, test_tasks=600)]}))
    # omniglot_5w1s: no run.json; the CSV is newer than the latest checkpoint
    omni = logs / 'omniglot_5w1s' / 'cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm'
    write_checkpoint(str(omni), 4999, 1000)
    write_csv(str(omni / 'test_ubs1_stepsize0.4.csv'), [0.2] + [0.985] * 10, [0.013] + [0.004] * 10)
    os.utime(omni / 'test_ubs1_stepsize0.4.csv', (2000, 2000))
    # omniglot_20w1s: tested at 2000 iterations, trained on to 3000
    o20 = logs / 'omniglot_20w1s' / 'cls_20.mbs_16.ubs_1.numstep5.updatelr0.1batchnorm'
    write_checkpoint(str(o20), 2999, 3000)
    write_csv(str(o20 / 'test_ubs1_stepsize0.1.csv'), [0.05] + [0.9] * 10, [0.001] + [0.01] * 10)
    (logs / 'omniglot_20w1s' / 'run.json').write_text(json.dumps({
        'experiment': 'omniglot_20w1s', 'smoke': True, 'machine': dict(MACHINE, cpu='Other CPU', avx512=False),
        'planned_iterations': 60000,
        'sessions': [session('train', 'a', 'b', 3600.0, iterations_before=0, iterations_after=2000),
                     session('test', 'c', 'd', 30.0, checkpoint='model1999', iterations=2000, test_tasks=10),
                     session('train', 'e', 'f', 1800.0, iterations_before=2000, iterations_after=3000)]}))
    # mini_5w1s: training interrupted, nothing tested
    mini = logs / 'mini_5w1s' / 'cls_5.mbs_4.ubs_1.numstep5.updatelr0.01hidden32maxpoolbatchnorm'
    write_checkpoint(str(mini), 999, 1000)
    (logs / 'mini_5w1s' / 'run.json').write_text(json.dumps({
        'experiment': 'mini_5w1s', 'machine': MACHINE, 'planned_iterations': 60000,
        'sessions': [session('train', 'g', None, None, iterations_before=0, last_seen='h', wall_s_so_far=1200.0),
                     session('train', 'i', None, None, iterations_before=1000)]}))   # killed, then running
    return logs


NOT_RUN = ('sine_k5_pretrained, sine_k5_oracle, sine_k10_maml, sine_k10_pretrained, sine_k10_oracle, sine_k20_maml, '
           'sine_k20_pretrained, sine_k20_oracle, omniglot_5w5s, omniglot_20w5s, omniglot_fc_5w1s, omniglot_fc_5w5s, '
           'omniglot_5w5s_from1s, omniglot_fc_5w5s_from1s, mini_5w1s_fo, mini_5w5s, mini_5w5s_fo, sine_k5_mamlpp, sine_k5_metasgd, sine_k5_maml_5steps, '
           'sine_k5_msl_5steps, anil_omniglot_5w1s, mamlpp_omniglot_5w1s, reptile_omniglot_5w1s, '
           'reptile_omniglot_5w5s, reptile_omniglot_20w1s, reptile_omniglot_20w5s, reptile_omniglot_5w1s_trans, '
           'reptile_omniglot_5w5s_trans, reptile_omniglot_20w1s_trans, reptile_omniglot_20w5s_trans, reptile_mini_5w1s, '
           'reptile_mini_5w5s, reptile_mini_5w1s_trans, reptile_mini_5w5s_trans, mamlpp_mini_5w1s, mamlpp_mini_5w5s, '
           'metasgd_mini_5w1s, metasgd_mini_5w5s, anil_mini_5w1s, anil_mini_5w5s, protonet_omniglot_5w1s, '
           'protonet_omniglot_5w5s, protonet_omniglot_20w1s, protonet_omniglot_20w5s, protonet_mini_5w1s, '
           'protonet_mini_5w5s, matchingnet_omniglot_5w1s, matchingnet_omniglot_5w5s, matchingnet_omniglot_20w1s, '
           'matchingnet_omniglot_20w5s, matchingnet_mini_5w1s, matchingnet_mini_5w5s, baseline_mini_5w1s, '
           'baseline_mini_5w5s, baseline_pp_mini_5w1s, baseline_pp_mini_5w5s')

EXPECTED_HEAD = """# Results of real runs

Generated by `scripts/report.py` from the logs that `scripts/reproduce.py` writes (regenerate with `python scripts/report.py --logdir logs`); every number below is read from the files named in its section. Each experiment is `python scripts/reproduce.py NAME` (list: `--list`), which runs the two main.py commands shown in its section.

Machines: Test CPU, 2 logical CPUs, AVX-512, virtual machine, GPU: none, TensorFlow 2.21.0 (tensorflow), Python 3.11.7; not recorded; Other CPU, 2 logical CPUs, virtual machine, GPU: none, TensorFlow 2.21.0 (tensorflow), Python 3.11.7.

## Summary

Ours: mean over the test tasks ± 95% confidence interval (1.96·std/√tasks; 600 tasks, the original protocol; Reptile's --protocol=reptile: 10000) from main.py's test CSV, after the number of inner steps the paper reports (learners without inner steps: 0) (sinusoid settings the paper shows only in figures: 1, 5 and 10 steps as its table, the oracle before adaptation; accuracy in %, mean squared error for sinusoid). Paper: Finn et al. 2017, ± its 95% CI; for the other learners their own paper (named in each run's section and in Settings), ± as published: a 95% CI except where marked † (MAML++: std over 3 seeds). Difference: ours − paper. Within CI: |difference| ≤ our CI + the paper's CI, i.e. the intervals overlap; * where the paper gives no interval (only our CI counts). Iterations: trained when tested / the paper's count. Train wall: the training sessions' wall times added up (interrupted ones included, killed ones until last seen alive, TensorFlow start-up and compilation too). An experiment run over seeds has a row per seed (`NAME/seed<s>`) and one with the mean ± standard deviation (ddof 1) of the seeds' means (see Over seeds).

| experiment | inner steps | ours | paper | difference | within CI | iterations | train wall |
|---|---|---|---|---|---|---|---|
| sine_k5_maml | 1 | 0.500 ± 0.050 | 0.67 | -0.170 | no* | 70000 / 70000 | 10m00s |
| sine_k5_maml | 5 | 0.380 ± 0.031 | 0.38 | +0.000 | yes* | 70000 / 70000 | 10m00s |
| sine_k5_maml | 10 | 0.360 ± 0.020 | 0.35 | +0.010 | yes* | 70000 / 70000 | 10m00s |
| omniglot_5w1s | 3 | 98.50 ± 0.40 | 98.7 ± 0.4 | -0.20 | yes | 5000 / 60000 | — |
| omniglot_20w1s (smoke) | 5 | 90.00 ± 1.00 | 95.8 ± 0.3 | -5.80 | no | 2000 / 60000 | 1h30m00s |
| mini_5w1s | 10 | — | 48.70 ± 1.84 | — | — | 1000 / 60000 (not tested) | 20m00s |

Not run: """ + NOT_RUN + """.

## Settings

The paper's hyperparameters; where the original's usage notes differ; the other learners' papers and how they are set up here:

"""

EXPECTED_RUNS = """## Runs

### sine_k5_maml: sinusoid 5-shot, MAML

```bash
python main.py --datasource=sinusoid --logdir=logs/sine_k5_maml
python main.py --datasource=sinusoid --logdir=logs/sine_k5_maml --train=False
```

- Run folder: `logs/sine_k5_maml/cls_5.mbs_25.ubs_5.numstep1.updatelr0.01nonorm`
- Iterations trained: 70000 of 70000 in the latest checkpoint
- Training wall time (all sessions; a killed one until it was last seen): 10m00s
- train: 2026-01-01T00:00:00+00:00 to 2026-01-01T00:10:00+00:00, wall 10m00s, iterations 0 → 70000, load average 1.0 at start, 2.0 at end, commit `abc1234`
- test: 2026-01-01T00:10:00+00:00 to 2026-01-01T00:10:20+00:00, wall 20s, checkpoint model69999 (70000 iterations), 600 tasks, commit `abc1234`
- Machine: Test CPU, 2 logical CPUs, AVX-512, virtual machine, GPU: none, TensorFlow 2.21.0 (tensorflow), Python 3.11.7
- A note.

Test MSE after each number of inner steps, mean ± 95% CI, from `logs/sine_k5_maml/cls_5.mbs_25.ubs_5.numstep1.updatelr0.01nonorm/test_ubs5_stepsize0.01.csv`:

| inner steps | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 |
|---|---|---|---|---|---|---|---|---|---|---|---|
| ours | 3.000 ± 0.200 | 0.500 ± 0.050 | 0.450 ± 0.040 | 0.400 ± 0.030 | 0.390 ± 0.030 | 0.380 ± 0.031 | 0.370 ± 0.030 | 0.360 ± 0.020 | 0.350 ± 0.020 | 0.340 ± 0.020 | 0.360 ± 0.020 |
| median over tasks | 3.000 | 0.250 | 0.250 | 0.250 | 0.250 | 0.250 | 0.250 | 0.250 | 0.250 | 0.300 | 25.200 |
| tasks with MSE > 10 or not finite | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 1 | 2 |
| mean over the other tasks | 2.333 | 0.250 | 0.250 | 0.250 | 0.250 | 0.250 | 0.250 | 0.250 | 0.250 | 0.233 | 0.250 |

Per-task values from the `.pkl` beside the CSV (4 tasks; nan counts as the largest in the median). A task is counted when its MSE is above 10 or not finite, the rule of `../shared/golden/tf1/sinusoid_70k.md` for the original code: before adaptation these are tasks of large amplitude (a sinusoid of amplitude 5 predicted as 0 has an MSE of 12.5), after it mostly tasks whose error grew in the inner loop.

### omniglot_5w1s: Omniglot 5-way 1-shot

No run record (run.json); the run was not made by reproduce.py.

- Run folder: `logs/omniglot_5w1s/cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm`
- Iterations trained: 5000 of 60000 in the latest checkpoint

Test accuracy (%) after each number of inner steps, mean ± 95% CI, from `logs/omniglot_5w1s/cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm/test_ubs1_stepsize0.4.csv`:

| inner steps | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 |
|---|---|---|---|---|---|---|---|---|---|---|---|
| ours | 20.00 ± 1.30 | 98.50 ± 0.40 | 98.50 ± 0.40 | 98.50 ± 0.40 | 98.50 ± 0.40 | 98.50 ± 0.40 | 98.50 ± 0.40 | 98.50 ± 0.40 | 98.50 ± 0.40 | 98.50 ± 0.40 | 98.50 ± 0.40 |

### omniglot_20w1s: Omniglot 20-way 1-shot

A smoke run (a check of the pipeline, not a result).

- Run folder: `logs/omniglot_20w1s/cls_20.mbs_16.ubs_1.numstep5.updatelr0.1batchnorm`
- Iterations trained: 3000 of 60000 in the latest checkpoint; the test used 2000
- Training wall time (all sessions; a killed one until it was last seen): 1h30m00s
- train: a to b, wall 1h00m00s, iterations 0 → 2000, commit `abc1234`
- test: c to d, wall 30s, checkpoint model1999 (2000 iterations), 10 tasks, commit `abc1234`
- train: e to f, wall 30m00s, iterations 2000 → 3000, commit `abc1234`
- Machine: Other CPU, 2 logical CPUs, virtual machine, GPU: none, TensorFlow 2.21.0 (tensorflow), Python 3.11.7

Test accuracy (%) after each number of inner steps, mean ± 95% CI, from `logs/omniglot_20w1s/cls_20.mbs_16.ubs_1.numstep5.updatelr0.1batchnorm/test_ubs1_stepsize0.1.csv`:

| inner steps | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 |
|---|---|---|---|---|---|---|---|---|---|---|---|
| ours | 5.00 ± 0.10 | 90.00 ± 1.00 | 90.00 ± 1.00 | 90.00 ± 1.00 | 90.00 ± 1.00 | 90.00 ± 1.00 | 90.00 ± 1.00 | 90.00 ± 1.00 | 90.00 ± 1.00 | 90.00 ± 1.00 | 90.00 ± 1.00 |

### mini_5w1s: MiniImagenet 5-way 1-shot

- Run folder: `logs/mini_5w1s/cls_5.mbs_4.ubs_1.numstep5.updatelr0.01hidden32maxpoolbatchnorm`
- Iterations trained: 1000 of 60000 in the latest checkpoint
- Training wall time (all sessions; a killed one until it was last seen): 20m00s
- train: g to ?, wall no end recorded (killed or running), last seen h, 20m00s in, iterations 0 → ?, commit `abc1234`
- train: i to ?, wall no end recorded (interrupted or running), iterations 1000 → ?, commit `abc1234`
- Machine: Test CPU, 2 logical CPUs, AVX-512, virtual machine, GPU: none, TensorFlow 2.21.0 (tensorflow), Python 3.11.7

Not tested yet.
"""


def test_report_of_synthetic_logs_is_exact(tmp_path):
    logs = synthetic_logs(tmp_path)
    expected = EXPECTED_HEAD + ''.join('- ' + n + '\n' for n in reproduce.NOTES) + '\n' + EXPECTED_RUNS
    assert report.report(str(logs)) == expected


def test_cli_writes_the_file(tmp_path):
    logs = synthetic_logs(tmp_path)
    out = tmp_path / 'RESULTS.md'
    r = subprocess.run([sys.executable, SCRIPT, '--logdir', str(logs), '--out', str(out)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == report.report(str(logs))


@pytest.mark.parametrize('ours, ci, paper, paper_ci, within', [
    (0.985, 0.004, '98.7', '0.4', 'yes'),      # |-0.2| <= 0.4 + 0.4
    (0.978, 0.004, '98.7', '0.4', 'no'),       # |-0.9| >  0.8
    (0.50, 0.05, '0.67', None, 'no*'),         # no paper interval: only ours
    (0.66, 0.05, '0.67', None, 'yes*'),
    (float('nan'), 0.0, '0.67', None, 'no*'),  # a diverged mean never agrees
])
def test_within_combined_ci(ours, ci, paper, paper_ci, within):
    name = 'omniglot_5w1s' if paper_ci else 'sine_k5_maml'
    e = reproduce.Experiment(name, 't', reproduce.EXPERIMENTS[name].flags, (reproduce.PaperResult(3, paper, paper_ci),))
    info = dict(mean=[ours] * 11, ci95=[ci] * 11, tested=1, latest=1, planned=1, train_wall=0, record={})
    assert report.summary_rows(e, info)[0].split(' | ')[5] == within


def test_number_formats():
    assert report.fmt('accuracy', 0.94833255) == '94.83'
    assert report.fmt('mse', 0.3024) == '0.302'
    assert report.fmt('mse', 1.9e8) == '1.9e+08'
    assert report.fmt('mse', 0.0030143736) == '0.0030' and report.fmt('mse', 0.0) == '0.000'
    assert report.fmt('mse', float('nan')) == 'nan'
    assert report.fmt('mse', -0.0864, signed=True) == '-0.086'
    assert report.duration(2994) == '49m54s' and report.duration(3725) == '1h02m05s' and report.duration(20.4) == '20s'


def test_bad_csv_is_one_line_and_writes_nothing(tmp_path):
    logs = synthetic_logs(tmp_path)
    bad = logs / 'omniglot_5w1s' / 'cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm' / 'test_ubs1_stepsize0.4.csv'
    bad.write_text('update0,update1\n0.2\n')
    out = tmp_path / 'RESULTS.md'
    r = subprocess.run([sys.executable, SCRIPT, '--logdir', str(logs), '--out', str(out)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [f'report.py: error: cannot read {bad} (not the header update0..updateT and '
                                     f'three rows); run the test again (reproduce.py NAME, or main.py --train=False)']
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ['logs']


def test_missing_logdir_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, SCRIPT, '--logdir', str(tmp_path / 'nowhere')], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [f'report.py: error: --logdir={tmp_path / "nowhere"} is not a folder; '
                                     f'see python scripts/report.py --help']


# ---------------------------------------------------------------------------- runs over seeds
SINE_DIR = 'cls_5.mbs_25.ubs_5.numstep1.updatelr0.01nonorm'
OMNI_DIR = 'cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm'


def seed_logs(root):
    """sine_k5_maml over seeds 0, 1 (tested; seed 0 with per-task rows) and 3 (trained, not tested);
    omniglot_5w1s over seeds 0 and 2 at 2000 iterations."""
    logs = root / 'logs'
    base = np.array([3.0, 0.5, 0.45, 0.4, 0.39, 0.38, 0.37, 0.36, 0.35, 0.34, 0.33])
    for s in (0, 1, 3):
        d = logs / 'sine_k5_maml' / f'seed{s}' / SINE_DIR
        write_checkpoint(str(d), 69999, 1000)
        if s != 3:
            write_csv(str(d / 'test_ubs5_stepsize0.01.csv'), list(base + 0.2 * s), [0.05] * 11)
        (d.parent / 'run.json').write_text(json.dumps({
            'experiment': 'sine_k5_maml', 'seed': s, 'machine': MACHINE, 'planned_iterations': 70000,
            'exp_dir': f'sine_k5_maml/seed{s}/{SINE_DIR}',
            'test_csv': f'sine_k5_maml/seed{s}/{SINE_DIR}/test_ubs5_stepsize0.01.csv',
            'sessions': [session('train', 'a', 'b', 100.0 + s, iterations_before=0, iterations_after=70000)]
            + ([] if s == 3 else [session('test', 'c', 'd', 10.0, checkpoint='model69999', iterations=70000,
                                          test_tasks=600)])}))
    rows = np.array([[12.5] + [0.1] * 10, [2.0] + [0.2] * 10, [1.0] + [0.3] * 10, [4.0] + [20.0] * 10])
    with open(logs / 'sine_k5_maml' / 'seed0' / SINE_DIR / 'test_ubs5_stepsize0.01.pkl', 'wb') as f:
        pickle.dump({'mses': rows}, f)
    for s, acc in ((0, 0.80), (2, 0.86)):
        d = logs / 'omniglot_5w1s' / f'seed{s}' / OMNI_DIR
        write_checkpoint(str(d), 1999, 1000)
        write_csv(str(d / 'test_ubs1_stepsize0.4.csv'), [0.2] + [acc] * 10, [0.013] + [0.01] * 10)
        (d.parent / 'run.json').write_text(json.dumps({
            'experiment': 'omniglot_5w1s', 'seed': s, 'machine': MACHINE, 'planned_iterations': 60000,
            'exp_dir': f'omniglot_5w1s/seed{s}/{OMNI_DIR}',
            'test_csv': f'omniglot_5w1s/seed{s}/{OMNI_DIR}/test_ubs1_stepsize0.4.csv',
            'sessions': [session('train', 'a', 'b', 600.0, iterations_before=0, iterations_after=2000),
                         session('test', 'c', 'd', 60.0, checkpoint='model1999', iterations=2000, test_tasks=600)]}))
    return logs


EXPECTED_SEED_SUMMARY = """| sine_k5_maml/seed0 | 1 | 0.500 ± 0.050 | 0.67 | -0.170 | no* | 70000 / 70000 | 1m40s |
| sine_k5_maml/seed0 | 5 | 0.380 ± 0.050 | 0.38 | +0.000 | yes* | 70000 / 70000 | 1m40s |
| sine_k5_maml/seed0 | 10 | 0.330 ± 0.050 | 0.35 | -0.020 | yes* | 70000 / 70000 | 1m40s |
| sine_k5_maml/seed1 | 1 | 0.700 ± 0.050 | 0.67 | +0.030 | yes* | 70000 / 70000 | 1m41s |
| sine_k5_maml/seed1 | 5 | 0.580 ± 0.050 | 0.38 | +0.200 | no* | 70000 / 70000 | 1m41s |
| sine_k5_maml/seed1 | 10 | 0.530 ± 0.050 | 0.35 | +0.180 | no* | 70000 / 70000 | 1m41s |
| sine_k5_maml/seed3 | 1 | — | 0.67 | — | — | 70000 / 70000 (not tested) | 1m43s |
| sine_k5_maml/seed3 | 5 | — | 0.38 | — | — | 70000 / 70000 (not tested) | 1m43s |
| sine_k5_maml/seed3 | 10 | — | 0.35 | — | — | 70000 / 70000 (not tested) | 1m43s |
| sine_k5_maml, seeds 0, 1, 3 | 1 | 0.600 ± 0.141 (mean ± std over 2 seeds) | 0.67 | -0.070 | — | 70000 / 70000 | 5m04s |
| sine_k5_maml, seeds 0, 1, 3 | 5 | 0.480 ± 0.141 (mean ± std over 2 seeds) | 0.38 | +0.100 | — | 70000 / 70000 | 5m04s |
| sine_k5_maml, seeds 0, 1, 3 | 10 | 0.430 ± 0.141 (mean ± std over 2 seeds) | 0.35 | +0.080 | — | 70000 / 70000 | 5m04s |
| omniglot_5w1s/seed0 | 3 | 80.00 ± 1.00 | 98.7 ± 0.4 | -18.70 | no | 2000 / 60000 | 10m00s |
| omniglot_5w1s/seed2 | 3 | 86.00 ± 1.00 | 98.7 ± 0.4 | -12.70 | no | 2000 / 60000 | 10m00s |
| omniglot_5w1s, seeds 0, 2 | 3 | 83.00 ± 4.24 (mean ± std over 2 seeds) | 98.7 ± 0.4 | -15.70 | — | 2000 / 60000 | 20m00s |
"""

EXPECTED_OVER_SEEDS = """## Over seeds

Ours: the test means of the seeds' runs (each over 600 tasks), their mean ± standard deviation (ddof 1) over the seeds, how many, smallest–largest. Paper: Finn et al. 2017 (after 60000 iterations for Omniglot, whatever the iterations here). Original code, this machine: the original TF1 code (cbfinn/maml) run on this 2-core Xeon, read from the notes named (`../shared/golden/tf1/`), with its iterations; within its range: yes if our mean lies between the smallest and largest of the original's finite figures, else below or above them (— with fewer than two figures).

| experiment | inner steps | seeds | ours: mean ± std | ours: min–max | paper | original code, this machine | our mean within the original's range |
|---|---|---|---|---|---|---|---|
| sine_k5_maml | 1 | 2 | 0.600 ± 0.141 | 0.500–0.700 | 0.67 | 0.577 (seed 0), 0.610 (seed 1), 0.584 (unseeded) (70000 it.; sinusoid_seeds.md, sinusoid_70k.md) | yes |
| sine_k5_maml | 2 | 2 | 0.550 ± 0.141 | 0.450–0.650 | — | 0.495 (seed 0), 0.448 (seed 1), 0.517 (unseeded) (70000 it.; sinusoid_seeds.md, sinusoid_70k.md) | above |
| sine_k5_maml | 3 | 2 | 0.500 ± 0.141 | 0.400–0.600 | — | 14.195 (seed 0), 0.434 (seed 1), 178 (unseeded) (70000 it.; sinusoid_seeds.md, sinusoid_70k.md) | yes |
| sine_k5_maml | 5 | 2 | 0.480 ± 0.141 | 0.380–0.580 | 0.38 | 1.22e+08 (seed 0), 1.27e+04 (seed 1), 1.9e+08 (unseeded) (70000 it.; sinusoid_seeds.md, sinusoid_70k.md) | below |
| sine_k5_maml | 10 | 2 | 0.430 ± 0.141 | 0.330–0.530 | 0.35 | 1.32e+28 (seed 0), 1.26e+04 (seed 1), nan (unseeded) (70000 it.; sinusoid_seeds.md, sinusoid_70k.md) | below |
| omniglot_5w1s | 1 | 2 | 83.00 ± 4.24 | 80.00–86.00 | — | 85.37 (run 1), 77.73 (run 2) (2000 it.; omniglot_training.md) | yes |
| omniglot_5w1s | 3 | 2 | 83.00 ± 4.24 | 80.00–86.00 | 98.7 ± 0.4 | — | — |
| omniglot_5w1s | 10 | 2 | 83.00 ± 4.24 | 80.00–86.00 | — | 86.57 (run 1), 78.97 (run 2) (2000 it.; omniglot_training.md) | yes |

### sine_k5_maml seed by seed

Our seed s (main.py --seed=s) draws its training tasks from `np.random.RandomState(s)` in the original's order, so it meta-trains on exactly the tasks of the original code run with `np.random.seed(s)` (only the initial weights differ); the 600 test tasks are the same for all (`np.random.seed(1)`). Median and tasks with MSE > 10 or not finite: over the test tasks, from the `.pkl`. Original: sinusoid_seeds.md (— where the notes give no figure).

| seed | inner steps | ours: mean ± 95% CI | original: mean | ours: median | original: median | ours: diverged tasks | original: diverged tasks |
|---|---|---|---|---|---|---|---|
| 0 | 0 | 3.000 ± 0.050 | 2.872 | 3.000 | — | 1 | 22 |
| 0 | 1 | 0.500 ± 0.050 | 0.577 | 0.250 | 0.304 | 1 | 0 |
| 0 | 2 | 0.450 ± 0.050 | 0.495 | 0.250 | 0.221 | 1 | 1 |
| 0 | 3 | 0.400 ± 0.050 | 14.195 | 0.250 | — | 1 | 7 |
| 0 | 5 | 0.380 ± 0.050 | 1.22e+08 | 0.250 | 0.166 | 1 | 9 |
| 0 | 10 | 0.330 ± 0.050 | 1.32e+28 | 0.250 | 0.145 | 1 | 5 |
| 1 | 0 | 3.200 ± 0.050 | 2.882 | — | — | — | 26 |
| 1 | 1 | 0.700 ± 0.050 | 0.610 | — | 0.314 | — | 0 |
| 1 | 2 | 0.650 ± 0.050 | 0.448 | — | 0.200 | — | 0 |
| 1 | 3 | 0.600 ± 0.050 | 0.434 | — | — | — | 0 |
| 1 | 5 | 0.580 ± 0.050 | 1.27e+04 | — | 0.137 | — | 1 |
| 1 | 10 | 0.530 ± 0.050 | 1.26e+04 | — | 0.122 | — | 1 |
| 3 | — | not tested | — | — | — | — | — |

"""


def test_report_over_seeds_is_exact(tmp_path):
    """A row per seed, mean ± std (ddof 1) over the tested seeds, the original's figures and range, the sinusoid
    paired seed by seed with the original's same seed (median and diverged count from the pkl)."""
    text = report.report(str(seed_logs(tmp_path)))
    head = text.split('|---|---|---|---|---|---|---|---|\n', 1)[1]
    assert head.split('\n\n', 1)[0] + '\n' == EXPECTED_SEED_SUMMARY
    assert EXPECTED_OVER_SEEDS + '## Settings' in text
    assert '### sine_k5_maml/seed3: sinusoid 5-shot, MAML' in text and 'Not tested yet.' in text
    assert '### omniglot_5w1s/seed2: Omniglot 5-way 1-shot' in text
    assert 'omniglot_5w1s' not in text.split('Not run: ')[1].split('\n')[0][:-1].split(', ')


def test_learners_rows_and_their_papers(tmp_path):
    """A learner without inner steps is compared at column 0; MAML++'s ± (std over seeds) is marked †; the run's
    section names the learner's paper."""
    logs = tmp_path / 'logs'
    for name, mean, ci in (('protonet_omniglot_5w1s', [0.985], [0.002]),
                           ('mamlpp_mini_5w1s', [0.2] + [0.52] * 10, [0.01] * 11)):
        e = reproduce.EXPERIMENTS[name]
        flags = reproduce.train_flags(e, str(logs / name))
        config = reproduce.parse_config(flags)
        iterations = reproduce.iterations_of(config)
        write_checkpoint(reproduce.exp_dir(config), iterations - 1, 1000)
        path = reproduce.test_csv(reproduce.parse_config(reproduce.test_flags(e, flags)))
        write_csv(path, mean, ci)
        os.utime(path, (2000, 2000))
    text = report.report(str(logs))
    assert ('| mamlpp_mini_5w1s | 5 | 52.00 ± 1.00 | 52.15 ± 0.26 | -0.15 | yes† | 50000 / 50000 | — |\n'
            '| protonet_omniglot_5w1s | 0 | 98.50 ± 0.20 | 98.8 | -0.30 | no* | 20000 / 20000 | — |\n') in text
    assert '- Paper: ProtoNets (Snell et al. 2017), Table 1: 98.8 at 0 inner steps\n' in text
    assert ('- Paper: MAML++ (Antoniou et al. 2019), a top-5 validation ensemble (none here): 52.15 ± 0.26 at 5 '
            'inner steps (± is the std over 3 seeds)\n') in text
    assert '| inner steps | 0 |\n|---|---|\n| ours | 98.50 ± 0.20 |\n' in text


def test_seed_statistics():
    infos = [dict(seed=s, mean=[0.0, v]) for s, v in ((0, 0.568), (1, 0.613), (2, 0.681), (3, 0.690), (4, 0.967))]
    stats = report.seed_stats(infos + [dict(seed=5, mean=None)], 1)
    assert stats['seeds'] == [0, 1, 2, 3, 4] and stats['n'] == 5
    assert stats['mean'] == pytest.approx(0.7038) and stats['std'] == pytest.approx(0.155460, abs=1e-6)
    assert (stats['min'], stats['max']) == (0.568, 0.967)
    assert report.seed_stats(infos[:1], 1)['std'] is None and report.seed_stats(infos, 11) is None


@pytest.mark.parametrize('value, figures, verdict', [
    (0.6, [0.577, 0.610, 0.584], 'yes'), (0.704, [0.577, 0.610, 0.584], 'above'), (0.5, [0.577, 0.61], 'below'),
    (0.43, [1.32e28, 1.26e4, float('nan')], 'below'), (float('inf'), [1.0, 2.0], 'above'),
    (float('nan'), [1.0, 2.0], '—'), (1.0, [float('nan'), float('inf')], '—')])
def test_range_verdict(value, figures, verdict):
    assert report.range_verdict(value, figures) == verdict


def test_the_seed_pairs_with_the_originals_np_random_seed():
    """main.py's sinusoid stream for --seed=s is the original generate_sinusoid_batch after np.random.seed(s)."""
    import config as config_lib
    import data_generator
    for seed in (0, 3):
        dg = data_generator.DataGenerator(10, 25, config_lib.Config(seed=seed))
        ours = [dg.generate() for _ in range(3)]
        np.random.seed(seed)
        for inputs, outputs, amp, phase in ours:       # the original's draws, in its order
            np.testing.assert_array_equal(amp, np.random.uniform(0.1, 5.0, [25]))
            np.testing.assert_array_equal(phase, np.random.uniform(0, np.pi, [25]))
            for func in range(25):
                np.testing.assert_array_equal(inputs[func], np.random.uniform(-5.0, 5.0, [10, 1]))
            np.testing.assert_array_equal(outputs, amp[:, None, None] * np.sin(inputs - phase[:, None, None]))


# ---------------------------------------------------------------------------- any main.py logdir, default output
def test_plain_main_py_logdir_is_reported(tmp_path):
    """`<logdir>/<exp_string>/test_*.csv` of main.py run by hand: listed under Other runs, accuracy told apart."""
    logs = tmp_path / 'mine'
    write_checkpoint(str(logs / SINE_DIR), 999, 1000)
    write_csv(str(logs / SINE_DIR / 'test_ubs5_stepsize0.01.csv'), [3.0, 0.5, 0.4], [0.2, 0.05, 0.04])
    write_csv(str(logs / OMNI_DIR / 'test_ubs1_stepsize0.4.csv'), [0.2, 0.9, 0.95], [0.013, 0.01, 0.009])
    text = report.report(str(logs))
    assert '\n\n'.join(text.split('## Other runs\n\n')[1].split('\n\n')[1:3]) == """\
| run folder | test file | iterations (latest checkpoint) | before adaptation | after 1 step | after the last step |
|---|---|---|---|---|---|
| `mine/cls_5.mbs_25.ubs_5.numstep1.updatelr0.01nonorm` | test_ubs5_stepsize0.01.csv | 1000 | 3.000 ± 0.200 (0) | 0.500 ± 0.050 (1) | 0.400 ± 0.040 (2) |
| `mine/cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm` | test_ubs1_stepsize0.4.csv | 0 | 20.00 ± 1.30 (0) | 90.00 ± 1.00 (1) | 95.00 ± 0.90 (2) |

### mine/cls_5.mbs_25.ubs_5.numstep1.updatelr0.01nonorm/test_ubs5_stepsize0.01.csv"""
    assert 'Not run: sine_k5_maml,' in text


def test_metric_from_event_files(tmp_path):
    (tmp_path / 'events.out.tfevents.1.host').write_bytes(b'\x00metatrain_Pre-update_accuracy\x00')
    assert report.metric_of(str(tmp_path), [3.0]) == 'accuracy'
    (tmp_path / 'events.out.tfevents.1.host').write_bytes(b'\x00metatrain_Pre-update_loss\x00')
    assert report.metric_of(str(tmp_path), [0.2, 0.9]) == 'mse'
    assert report.metric_of(str(tmp_path / 'none'), [0.2, 0.9]) == 'accuracy'


def test_default_out_is_inside_the_logdir(tmp_path):
    logs = seed_logs(tmp_path)
    r = subprocess.run([sys.executable, SCRIPT, '--logdir', str(logs)], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == '' and (logs / 'RESULTS.md').read_text() == report.report(str(logs))
    assert sorted(os.listdir(tmp_path)) == ['logs']
