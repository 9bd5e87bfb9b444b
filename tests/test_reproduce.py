"""scripts/reproduce.py: the registry's flags are the paper's, commands, bad input, and every experiment
run end to end in smoke mode (one sinusoid run in the default set, all of them in the slow set)."""
import csv
import importlib.util
import json
import os
import pickle
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

SCRIPT = os.path.join(REPO, 'scripts', 'reproduce.py')
spec = importlib.util.spec_from_file_location('reproduce', SCRIPT)
reproduce = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)

# the shared parts of the learners' experiment names
R5 = 'cls_5.mbs_5.'
R5_REST = ('.numstep1.updatelr0.001batchnorm.reptile.protocol_reptile.inner_iters5.inner_batch10.train_shots10'
           '.meta_step1.0.meta_step_final0.0')
R20 = 'cls_20.mbs_5.'
R20_REST = ('.numstep1.updatelr0.0005batchnorm.reptile.protocol_reptile.inner_iters10.inner_batch20.train_shots10'
            '.meta_step1.0.meta_step_final0.0.eval_batch10')
RM = 'cls_5.mbs_5.'
RM_REST = ('.numstep1.updatelr0.001hidden32maxpoolbatchnorm.reptile.inner_iters8.inner_batch10.train_shots15'
           '.meta_step1.0.meta_step_final0.0')
MAMLPP = '.numstep5.updatelr0.1hidden48maxpoolbatchnorm.multi_step_loss.multi_step_loss_epochs15.lslr.per_step_bn'
METRIC = '.numstep1.updatelr0.001batchnorm'      # protonet, matchingnet, baselines: MAML's defaults in the name

# name -> (exp_string, iterations, the column the paper reports): the paper's settings, written out
EXPECTED = {
    'sine_k5_maml': ('cls_5.mbs_25.ubs_5.numstep1.updatelr0.01nonorm', 70000, [1, 5, 10]),
    'sine_k5_pretrained': ('cls_5.mbs_25.ubs_5.numstep1.updatelr0.01nonorm', 70000, [1, 5, 10]),
    'sine_k5_oracle': ('cls_5.mbs_25.ubs_5.numstep1.updatelr0.01oraclenonorm', 70000, []),
    'sine_k10_maml': ('cls_5.mbs_25.ubs_10.numstep1.updatelr0.01nonorm', 70000, []),
    'sine_k10_pretrained': ('cls_5.mbs_25.ubs_10.numstep1.updatelr0.01nonorm', 70000, []),
    'sine_k10_oracle': ('cls_5.mbs_25.ubs_10.numstep1.updatelr0.01oraclenonorm', 70000, []),
    'sine_k20_maml': ('cls_5.mbs_25.ubs_20.numstep1.updatelr0.01nonorm', 70000, []),
    'sine_k20_pretrained': ('cls_5.mbs_25.ubs_20.numstep1.updatelr0.01nonorm', 70000, []),
    'sine_k20_oracle': ('cls_5.mbs_25.ubs_20.numstep1.updatelr0.01oraclenonorm', 70000, []),
    'omniglot_5w1s': ('cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm', 60000, [3]),
    'omniglot_5w5s': ('cls_5.mbs_32.ubs_5.numstep1.updatelr0.4batchnorm', 60000, [3]),
    'omniglot_20w1s': ('cls_20.mbs_16.ubs_1.numstep5.updatelr0.1batchnorm', 60000, [5]),
    'omniglot_20w5s': ('cls_20.mbs_16.ubs_5.numstep5.updatelr0.1batchnorm', 60000, [5]),
    'omniglot_fc_5w1s': ('cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm', 60000, [3]),
    'omniglot_fc_5w5s': ('cls_5.mbs_32.ubs_5.numstep1.updatelr0.4batchnorm', 60000, [3]),
    # the author's 5-shot protocol: the 1-shot model (its folder name) tested with K = 5
    'omniglot_5w5s_from1s': ('cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm', 60000, [3]),
    'omniglot_fc_5w5s_from1s': ('cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm', 60000, [3]),
    'mini_5w1s': ('cls_5.mbs_4.ubs_1.numstep5.updatelr0.01hidden32maxpoolbatchnorm', 60000, [10]),
    'mini_5w1s_fo': ('cls_5.mbs_4.ubs_1.numstep5.updatelr0.01hidden32maxpoolstopgradbatchnorm', 60000, [10]),
    'mini_5w5s': ('cls_5.mbs_2.ubs_5.numstep5.updatelr0.01hidden32maxpoolbatchnorm', 60000, [10]),
    'mini_5w5s_fo': ('cls_5.mbs_2.ubs_5.numstep5.updatelr0.01hidden32maxpoolstopgradbatchnorm', 60000, [10]),
    # issue 14: the K = 5 sinusoid with MAML++'s MSL + LSLR and with Meta-SGD (no paper number)
    'sine_k5_mamlpp': ('cls_5.mbs_25.ubs_5.numstep1.updatelr0.01nonorm.multi_step_loss.lslr', 70000, []),
    'sine_k5_metasgd': ('cls_5.mbs_25.ubs_5.numstep1.updatelr0.01nonorm.metasgd', 70000, []),
    # ... trained with 5 inner steps, MAML and MAML + MSL; ANIL and MAML++ beside MAML's Omniglot 5-way 1-shot
    'sine_k5_maml_5steps': ('cls_5.mbs_25.ubs_5.numstep5.updatelr0.01nonorm', 70000, []),
    'sine_k5_msl_5steps': ('cls_5.mbs_25.ubs_5.numstep5.updatelr0.01nonorm.multi_step_loss', 70000, []),
    'anil_omniglot_5w1s': ('cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm.anil', 60000, []),
    'mamlpp_omniglot_5w1s': ('cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm.lslr.per_step_bn.cosine_meta_lr',
                             60000, []),
    # Reptile: README flags (Omniglot 100000 / 200000 meta-iterations), column after 50 evaluation steps
    'reptile_omniglot_5w1s': (R5 + 'ubs_1' + R5_REST, 100000, [50]),
    'reptile_omniglot_5w5s': (R5 + 'ubs_5' + R5_REST, 100000, [50]),
    'reptile_omniglot_20w1s': (R20 + 'ubs_1' + R20_REST, 200000, [50]),
    'reptile_omniglot_20w5s': (R20 + 'ubs_5' + R20_REST, 200000, [50]),
    'reptile_omniglot_5w1s_trans': (R5 + 'ubs_1' + R5_REST + '.transductive', 100000, [50]),
    'reptile_omniglot_5w5s_trans': (R5 + 'ubs_5' + R5_REST + '.transductive', 100000, [50]),
    'reptile_omniglot_20w1s_trans': (R20 + 'ubs_1' + R20_REST + '.transductive', 200000, [50]),
    'reptile_omniglot_20w5s_trans': (R20 + 'ubs_5' + R20_REST + '.transductive', 200000, [50]),
    'reptile_mini_5w1s': (RM + 'ubs_1' + RM_REST, 100000, [50]),
    'reptile_mini_5w5s': (RM + 'ubs_5' + RM_REST + '.eval_batch15', 100000, [50]),
    'reptile_mini_5w1s_trans': (RM + 'ubs_1' + RM_REST + '.transductive', 100000, [50]),
    'reptile_mini_5w5s_trans': (RM + 'ubs_5' + RM_REST + '.eval_batch15.transductive', 100000, [50]),
    'mamlpp_mini_5w1s': ('cls_5.mbs_2.ubs_1' + MAMLPP, 50000, [5]),
    'mamlpp_mini_5w5s': ('cls_5.mbs_2.ubs_5' + MAMLPP, 50000, [5]),
    'metasgd_mini_5w1s': ('cls_5.mbs_4.ubs_1.numstep1.updatelr0.01hidden32maxpoolbatchnorm.metasgd', 60000, [1]),
    'metasgd_mini_5w5s': ('cls_5.mbs_2.ubs_5.numstep1.updatelr0.01hidden32maxpoolbatchnorm.metasgd', 60000, [1]),
    'anil_mini_5w1s': ('cls_5.mbs_4.ubs_1.numstep5.updatelr0.01hidden32maxpoolbatchnorm.anil', 60000, [10]),
    'anil_mini_5w5s': ('cls_5.mbs_2.ubs_5.numstep5.updatelr0.01hidden32maxpoolbatchnorm.anil', 60000, [10]),
    # no inner steps: column 0; 20000 episodes of one task (meta batch 1)
    'protonet_omniglot_5w1s': ('cls_5.mbs_1.ubs_1' + METRIC + '.protonet.train_classes60', 20000, [0]),
    'protonet_omniglot_5w5s': ('cls_5.mbs_1.ubs_5' + METRIC + '.protonet.train_classes60', 20000, [0]),
    'protonet_omniglot_20w1s': ('cls_20.mbs_1.ubs_1' + METRIC + '.protonet.train_classes60', 20000, [0]),
    'protonet_omniglot_20w5s': ('cls_20.mbs_1.ubs_5' + METRIC + '.protonet.train_classes60', 20000, [0]),
    'protonet_mini_5w1s': ('cls_5.mbs_1.ubs_1' + METRIC + '.protonet.train_classes30', 20000, [0]),
    'protonet_mini_5w5s': ('cls_5.mbs_1.ubs_5' + METRIC + '.protonet.train_classes20', 20000, [0]),
    'matchingnet_omniglot_5w1s': ('cls_5.mbs_1.ubs_1' + METRIC + '.matchingnet', 20000, [0]),
    'matchingnet_omniglot_5w5s': ('cls_5.mbs_1.ubs_5' + METRIC + '.matchingnet', 20000, [0]),
    'matchingnet_omniglot_20w1s': ('cls_20.mbs_1.ubs_1' + METRIC + '.matchingnet', 20000, [0]),
    'matchingnet_omniglot_20w5s': ('cls_20.mbs_1.ubs_5' + METRIC + '.matchingnet', 20000, [0]),
    'matchingnet_mini_5w1s': ('cls_5.mbs_1.ubs_1' + METRIC + '.matchingnet', 20000, [0]),
    'matchingnet_mini_5w5s': ('cls_5.mbs_1.ubs_5' + METRIC + '.matchingnet', 20000, [0]),
    # 400 epochs of 38400 MiniImagenet images in mini-batches of 16
    'baseline_mini_5w1s': ('cls_5.mbs_25.ubs_1' + METRIC + '.baseline', 960000, [0]),
    'baseline_mini_5w5s': ('cls_5.mbs_25.ubs_5' + METRIC + '.baseline', 960000, [0]),
    'baseline_pp_mini_5w1s': ('cls_5.mbs_25.ubs_1' + METRIC + '.baseline_pp', 960000, [0]),
    'baseline_pp_mini_5w5s': ('cls_5.mbs_25.ubs_5' + METRIC + '.baseline_pp', 960000, [0]),
}
def method_of(name):
    """The --method of a registry entry, by its name (MAML++ is --method=maml with its switches)."""
    if name == 'sine_k5_metasgd':
        return 'metasgd'
    return next((m for m in ('baseline_pp', 'baseline', 'reptile', 'metasgd', 'anil', 'protonet', 'matchingnet')
                 if name.startswith(m + '_')), 'maml')


NO_INNER_STEPS = ('protonet', 'matchingnet', 'baseline', 'baseline_pp')


def csv_columns(e):
    """The columns of an experiment's test CSV: steps 0..10, Reptile's 0..50, one for learners without inner steps."""
    config = reproduce.parse_config(reproduce.train_flags(e, 'L'))
    return 1 if config.method in NO_INNER_STEPS else (51 if config.method == 'reptile' else 11)


def _run(*args, cwd=None, timeout=600):
    """reproduce.py with `args`; on a timeout its whole process group (main.py included) is killed."""
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}
    proc = subprocess.Popen([sys.executable, SCRIPT, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _csv(path):
    with open(path, newline='') as f:
        return list(csv.reader(f))


# ---------------------------------------------------------------------------- registry
def test_registry_has_every_experiment_of_the_usage_notes():
    assert list(reproduce.EXPERIMENTS) == list(EXPECTED)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_flags_are_the_papers_settings(name, tmp_path):
    import config as config_lib
    e = reproduce.EXPERIMENTS[name]
    config = reproduce.parse_config(reproduce.train_flags(e, str(tmp_path)))
    exp_string, iterations, steps = EXPECTED[name]
    assert config_lib.exp_string(config) == exp_string
    assert config.pretrain_iterations + config.metatrain_iterations == iterations
    assert [r.step for r in e.paper] == steps
    assert config.seed == 0 and config.meta_lr == 0.001 and config.logdir == str(tmp_path)
    assert config.conv == ('_fc_' not in name)
    if name.startswith('sine'):
        assert (config.datasource, config.meta_batch_size, config.update_lr, config.num_updates, config.norm) == \
            ('sinusoid', 25, 0.01, 5 if name.endswith('_5steps') else 1, 'None')
        assert config.pretrain_iterations == (70000 if name.endswith(('pretrained', 'oracle')) else 0)
        assert config.baseline == ('oracle' if name.endswith('oracle') else None)
    if name.startswith('mini') or name.startswith(('reptile_mini', 'metasgd_mini', 'anil_mini')):
        assert (config.num_filters, config.max_pool, config.stop_grad) == (32, True, name.endswith('_fo'))
    assert config.method == method_of(name)
    assert csv_columns(e) > max(steps, default=0)
    if name.startswith(('mamlpp_mini', 'sine_k5_mamlpp')):
        assert (config.multi_step_loss, config.lslr) == (True, True)
    if name == 'mamlpp_omniglot_5w1s':   # one inner step: the switches that act there
        assert (config.lslr, config.per_step_bn, config.per_step_bn_stats, config.cosine_meta_lr) == (
            True, True, False, True)
    assert config.multi_step_loss == name.startswith(('mamlpp_mini', 'sine_k5_mamlpp', 'sine_k5_msl'))
    test = reproduce.parse_config(reproduce.test_flags(e, reproduce.train_flags(e, str(tmp_path))))
    assert (test.train, test.test_set) == (False, not name.startswith('sine'))
    assert config_lib.exp_string(test) == exp_string


def test_paper_numbers():
    got = {n: [(r.step, r.mean, r.ci) for r in e.paper] for n, e in reproduce.EXPERIMENTS.items() if e.paper}
    assert got == {
        'sine_k5_maml': [(1, '0.67', None), (5, '0.38', None), (10, '0.35', None)],
        'sine_k5_pretrained': [(1, '2.41', None), (5, '2.23', None), (10, '2.19', None)],
        'omniglot_5w1s': [(3, '98.7', '0.4')], 'omniglot_5w5s': [(3, '99.9', '0.1')],
        'omniglot_20w1s': [(5, '95.8', '0.3')], 'omniglot_20w5s': [(5, '98.9', '0.2')],
        'omniglot_fc_5w1s': [(3, '89.7', '1.1')], 'omniglot_fc_5w5s': [(3, '97.5', '0.6')],
        'omniglot_5w5s_from1s': [(3, '99.9', '0.1')], 'omniglot_fc_5w5s_from1s': [(3, '97.5', '0.6')],
        'mini_5w1s': [(10, '48.70', '1.84')], 'mini_5w1s_fo': [(10, '48.07', '1.75')],
        'mini_5w5s': [(10, '63.11', '0.92')], 'mini_5w5s_fo': [(10, '63.15', '0.91')],
        'reptile_omniglot_5w1s': [(50, '95.39', '0.09')], 'reptile_omniglot_5w5s': [(50, '98.90', '0.10')],
        'reptile_omniglot_20w1s': [(50, '88.14', '0.15')], 'reptile_omniglot_20w5s': [(50, '96.65', '0.33')],
        'reptile_omniglot_5w1s_trans': [(50, '97.68', '0.04')], 'reptile_omniglot_5w5s_trans': [(50, '99.48', '0.06')],
        'reptile_omniglot_20w1s_trans': [(50, '89.43', '0.14')],
        'reptile_omniglot_20w5s_trans': [(50, '97.12', '0.32')],
        'reptile_mini_5w1s': [(50, '47.07', '0.26')], 'reptile_mini_5w5s': [(50, '62.74', '0.37')],
        'reptile_mini_5w1s_trans': [(50, '49.97', '0.32')], 'reptile_mini_5w5s_trans': [(50, '65.99', '0.58')],
        'mamlpp_mini_5w1s': [(5, '52.15', '0.26')], 'mamlpp_mini_5w5s': [(5, '68.32', '0.44')],
        'metasgd_mini_5w1s': [(1, '50.47', '1.87')], 'metasgd_mini_5w5s': [(1, '64.03', '0.94')],
        'anil_mini_5w1s': [(10, '46.7', '0.4')], 'anil_mini_5w5s': [(10, '61.5', '0.5')],
        'protonet_omniglot_5w1s': [(0, '98.8', None)], 'protonet_omniglot_5w5s': [(0, '99.7', None)],
        'protonet_omniglot_20w1s': [(0, '96.0', None)], 'protonet_omniglot_20w5s': [(0, '98.9', None)],
        'protonet_mini_5w1s': [(0, '49.42', '0.78')], 'protonet_mini_5w5s': [(0, '68.20', '0.66')],
        'matchingnet_omniglot_5w1s': [(0, '98.1', None)], 'matchingnet_omniglot_5w5s': [(0, '98.9', None)],
        'matchingnet_omniglot_20w1s': [(0, '93.8', None)], 'matchingnet_omniglot_20w5s': [(0, '98.5', None)],
        'matchingnet_mini_5w1s': [(0, '43.56', '0.84')], 'matchingnet_mini_5w5s': [(0, '55.31', '0.73')],
        'baseline_mini_5w1s': [(0, '42.11', '0.71')], 'baseline_mini_5w5s': [(0, '62.53', '0.69')],
        'baseline_pp_mini_5w1s': [(0, '48.24', '0.75')], 'baseline_pp_mini_5w5s': [(0, '66.43', '0.63')]}


def test_smoke_and_iterations_flags():
    e = reproduce.EXPERIMENTS['sine_k10_pretrained']
    assert reproduce.train_flags(e, 'L', smoke=True) == [
        '--datasource=sinusoid', '--norm=None', '--meta_batch_size=2', '--update_lr=0.01', '--num_updates=1',
        '--seed=0', '--steps_per_execution=1', '--pretrain_iterations=2', '--metatrain_iterations=0',
        '--update_batch_size=10', '--xla=False', '--logdir=L']   # a smoke run has no XLA, so no loop of steps
    e = reproduce.EXPERIMENTS['omniglot_20w5s']
    assert reproduce.train_flags(e, 'L', data_dir='D', smoke=True) == [
        '--datasource=omniglot', '--num_classes=20', '--metatrain_iterations=2', '--meta_batch_size=2',
        '--update_lr=0.1', '--num_updates=5', '--update_batch_size=5', '--seed=0', '--xla=False', '--num_query=1',
        '--num_filters=8',
        '--data_dir=D', '--logdir=L']
    e = reproduce.EXPERIMENTS['omniglot_fc_5w1s']      # no conv filters to shrink
    assert '--num_filters=8' not in reproduce.train_flags(e, 'L', smoke=True)
    import config as config_lib
    e = reproduce.EXPERIMENTS['mini_5w1s_fo']
    assert config_lib.exp_string(reproduce.parse_config(reproduce.train_flags(e, 'L', smoke=True))) == \
        'cls_5.mbs_2.ubs_1.numstep5.updatelr0.01hidden8maxpoolstopgradbatchnorm'
    e = reproduce.EXPERIMENTS['omniglot_5w1s']
    assert reproduce.train_flags(e, 'L', data_dir='D', iterations=5000) == [
        '--datasource=omniglot', '--num_classes=5', '--metatrain_iterations=5000', '--meta_batch_size=32',
        '--update_lr=0.4', '--num_updates=1', '--update_batch_size=1', '--seed=0', '--data_dir=D', '--logdir=L']


def test_smoke_flags_of_the_reptile_protocol():
    """--protocol=reptile fixes its network and its one query per class, and tests --eval_samples tasks."""
    e = reproduce.EXPERIMENTS['reptile_omniglot_20w5s_trans']
    flags = reproduce.train_flags(e, 'L', smoke=True)
    assert '--eval_samples=10' in flags and not any(f.startswith(('--num_filters', '--num_query')) for f in flags)
    assert '--eval_samples=10000' in reproduce.train_flags(e, 'L')
    flags = reproduce.train_flags(reproduce.EXPERIMENTS['protonet_omniglot_5w1s'], 'L', smoke=True)
    assert ('--num_filters=8' in flags and '--num_query=1' in flags and '--meta_batch_size=2' in flags
            and '--train_classes=60' in flags)


def test_a_flag_the_method_does_not_take_is_rejected():
    """parse_config checks the registry's flags as main.py does, flags of other methods included."""
    with pytest.raises(reproduce.UsageError, match='--num_updates means nothing to --method=protonet'):
        reproduce.parse_config(['--datasource=omniglot', '--method=protonet', '--num_updates=5', '--logdir=L'])


def test_dry_run_prints_the_main_py_commands(tmp_path):
    r = _run('sine_k10_maml', 'mini_5w5s_fo', '--dry_run', '--data_dir', str(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        'python main.py --datasource=sinusoid --norm=None --meta_batch_size=25 --update_lr=0.01 --num_updates=1 '
        '--seed=0 --steps_per_execution=100 --metatrain_iterations=70000 --update_batch_size=10 --logdir=logs/sine_k10_maml',
        'python main.py --datasource=sinusoid --norm=None --meta_batch_size=25 --update_lr=0.01 --num_updates=1 '
        '--seed=0 --steps_per_execution=100 --metatrain_iterations=70000 --update_batch_size=10 --logdir=logs/sine_k10_maml --train=False',
        'python main.py --datasource=miniimagenet --num_classes=5 --metatrain_iterations=60000 --meta_batch_size=2 '
        '--update_batch_size=5 --update_lr=0.01 --num_updates=5 --num_filters=32 --max_pool=True --stop_grad=True '
        f'--seed=0 --data_dir={tmp_path} --logdir=logs/mini_5w5s_fo',
        'python main.py --datasource=miniimagenet --num_classes=5 --metatrain_iterations=60000 --meta_batch_size=2 '
        '--update_batch_size=5 --update_lr=0.01 --num_updates=5 --num_filters=32 --max_pool=True --stop_grad=True '
        f'--seed=0 --data_dir={tmp_path} --logdir=logs/mini_5w5s_fo --train=False --test_set=True']
    assert os.listdir(tmp_path) == []


def test_dry_run_with_seeds_gives_each_seed_its_folder(tmp_path):
    r = _run('sine_k5_maml', 'omniglot_5w1s', '--seeds', '3', '0', '--iterations', '2000', '--dry_run', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    sine = ('python main.py --datasource=sinusoid --norm=None --meta_batch_size=25 --update_lr=0.01 --num_updates=1 '
            '--seed={s} --steps_per_execution=100 --metatrain_iterations=2000 --update_batch_size=5 --logdir=logs/sine_k5_maml/seed{s}')
    omni = ('python main.py --datasource=omniglot --num_classes=5 --metatrain_iterations=2000 --meta_batch_size=32 '
            '--update_lr=0.4 --num_updates=1 --update_batch_size=1 --seed={s} --logdir=logs/omniglot_5w1s/seed{s}')
    assert r.stdout.splitlines() == [
        sine.format(s=3), sine.format(s=3) + ' --train=False', sine.format(s=0), sine.format(s=0) + ' --train=False',
        omni.format(s=3), omni.format(s=3) + ' --train=False --test_set=True',
        omni.format(s=0), omni.format(s=0) + ' --train=False --test_set=True']
    assert os.listdir(tmp_path) == []


def test_seed_folders_are_found():
    assert reproduce.run_folder('L', 'sine_k5_maml') == os.path.join('L', 'sine_k5_maml')
    assert reproduce.run_folder('L', 'sine_k5_maml', 4) == os.path.join('L', 'sine_k5_maml', 'seed4')


def test_seeds_run_lists_seed_folders_only(tmp_path):
    for d in ('seed10', 'seed2', 'seedx', 'cls_5.mbs_25.ubs_5.numstep1.updatelr0.01nonorm'):
        (tmp_path / d).mkdir()
    (tmp_path / 'seed3').write_text('a file')
    assert reproduce.seeds_run(str(tmp_path)) == [2, 10]
    assert reproduce.seeds_run(str(tmp_path / 'nowhere')) == []


def test_list_names_every_experiment():
    r = _run('--list')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [line.split(':')[0] for line in lines[::2]] == list(EXPECTED)
    assert lines[18] == 'omniglot_5w1s: Omniglot 5-way 1-shot; paper (Table 1): 3 steps 98.7 ± 0.4'
    assert lines[19] == ('    python main.py --datasource=omniglot --num_classes=5 --metatrain_iterations=60000 '
                         '--meta_batch_size=32 --update_lr=0.4 --num_updates=1 --update_batch_size=1 --seed=0')


@pytest.mark.parametrize('args, message', [
    (['nope'], "unknown experiment 'nope' (known: " + ', '.join(EXPECTED) + '); see python scripts/reproduce.py --help'),
    ([], 'name at least one experiment, or pass --list; see python scripts/reproduce.py --help'),
    (['sine_k5_maml', '--iterations', '0'], '--iterations=0 must be >= 1; see python scripts/reproduce.py --help'),
    (['sine_k5_maml', '--iterations', '5', '--smoke'],
     '--iterations and --smoke both set the iteration count; pass one of them; see python scripts/reproduce.py --help'),
    (['sine_k5_maml', '--seeds', '1', '1'],
     '--seeds 1 1: seeds must be >= 0 and different; see python scripts/reproduce.py --help'),
    (['sine_k5_maml', '--seeds', '-1'],
     '--seeds -1: seeds must be >= 0 and different; see python scripts/reproduce.py --help'),
    (['omniglot_5w1s', '--data_dir', 'nowhere'],
     '--data_dir=nowhere is not a folder; see python scripts/reproduce.py --help'),
])
def test_bad_arguments_are_one_line_and_write_nothing(tmp_path, args, message):
    r = _run(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.splitlines() == ['reproduce.py: error: ' + message]
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------- smoke runs
def check_smoke_run(root, name, data_dir='', seed=None):
    """The files a smoke run leaves: run.json with a train and a test session, the CSV and pkl of 10 tasks
    (in `<root>/<name>/seed<seed>/` with `seed`)."""
    import config as config_lib
    e = reproduce.EXPERIMENTS[name]
    exp_string = config_lib.exp_string(reproduce.parse_config(reproduce.train_flags(e, 'L', smoke=True)))
    folder = model_folder = reproduce.run_folder(root, name, seed)
    with open(os.path.join(folder, 'run.json')) as f:
        record = json.load(f)
    if e.trained_by:   # the other experiment's run, then only the test of its model here
        check_smoke_run(root, e.trained_by, data_dir, seed)
        model_folder = reproduce.run_folder(root, e.trained_by, seed)
        assert [(s['phase'], s['returncode']) for s in record['sessions']] == [('test', 0)]
        test = record['sessions'][0]
    else:
        assert [(s['phase'], s['returncode']) for s in record['sessions']] == [('train', 0), ('test', 0)]
        train, test = record['sessions']
        assert (train['iterations_before'], train['iterations_after'], train['target_iterations']) == (0, 2, 2)
    assert record['planned_iterations'] == 2
    assert (test['checkpoint'], test['iterations'], test['test_tasks']) == ('model1', 2, 10)
    assert record['smoke'] is True and record['exp_dir'] == os.path.join(os.path.relpath(model_folder, root),
                                                                         exp_string)
    flags = reproduce.train_flags(e, model_folder, data_dir, smoke=True, seed=seed)
    assert record['train_command'] == reproduce.shown_command(flags, 10)
    assert record['test_command'] == reproduce.shown_command(reproduce.test_flags(e, flags), 10)
    assert record['machine']['logical_cpus'] == os.cpu_count()
    table = _csv(os.path.join(root, record['test_csv']))
    columns = csv_columns(e)
    assert table[0] == ['update' + str(i) for i in range(columns)] and len(table) == 4
    values = np.array(table[1:], np.float64)
    with open(os.path.join(root, record['test_csv'])[:-4] + '.pkl', 'rb') as f:
        rows = pickle.load(f)['mses']
    assert rows.shape == (10, columns)
    np.testing.assert_allclose(values[2], 1.96 * rows.std(0) / np.sqrt(10), rtol=1e-5)
    if e.metric == 'accuracy':
        assert np.all((rows >= 0) & (rows <= 1))
    for phase in ('test',) if e.trained_by else ('train', 'test'):
        assert os.path.getsize(os.path.join(folder, phase + '.log')) > 0
    return record


def test_sinusoid_smoke_run_then_rerun_resumes_nothing(tmp_path):
    root = tmp_path / 'logs'
    r = _run('sine_k5_pretrained', '--smoke', '--logdir_root', str(root), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'Pretrain Iteration' not in r.stdout and 'Done initializing, starting training.' in r.stdout
    record = check_smoke_run(str(root), 'sine_k5_pretrained')
    assert record['train_command'].endswith('--pretrain_iterations=2 --metatrain_iterations=0 --update_batch_size=5 '
                                            f'--xla=False --logdir={root}/sine_k5_pretrained  '
                                            '# smoke entry point, 10 test tasks')
    r = _run('sine_k5_pretrained', '--smoke', '--logdir_root', str(root), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    csv_path = os.path.join(root, record['test_csv'])
    assert r.stdout.splitlines() == [
        '[reproduce] sine_k5_pretrained: trained (2 of 2 iterations), not training again',
        f'[reproduce] sine_k5_pretrained: {csv_path} is newer than model1, not testing again']
    with open(root / 'sine_k5_pretrained' / 'run.json') as f:
        assert len(json.load(f)['sessions']) == 2


@pytest.mark.slow
def test_smoke_run_over_seeds_then_rerun_resumes_nothing(tmp_path):
    """Two seeds, a folder and run.json each; different seeds, different results; a rerun does nothing."""
    root = tmp_path / 'logs'
    r = _run('sine_k5_maml', '--smoke', '--seeds', '0', '1', '--logdir_root', str(root), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(os.listdir(root / 'sine_k5_maml')) == ['seed0', 'seed1']
    results = []
    for s in (0, 1):
        record = check_smoke_run(str(root), 'sine_k5_maml', seed=s)
        assert record['seed'] == s and f'--seed={s} ' in record['train_command']
        assert record['exp_dir'] == os.path.join('sine_k5_maml', f'seed{s}', 'cls_5.mbs_2.ubs_5.numstep1.updatelr0.01nonorm')
        results.append(_csv(os.path.join(root, record['test_csv']))[1])
    assert results[0] != results[1]
    r = _run('sine_k5_maml', '--smoke', '--seeds', '0', '1', '--logdir_root', str(root), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [line.split(':')[0] for line in r.stdout.splitlines()] == [
        '[reproduce] sine_k5_maml/seed0', '[reproduce] sine_k5_maml/seed0',
        '[reproduce] sine_k5_maml/seed1', '[reproduce] sine_k5_maml/seed1']


def test_failing_phase_stops_with_its_status(tmp_path):
    """No Omniglot data: main.py's one-line error reaches train.log and reproduce.py exits 2."""
    root = tmp_path / 'logs'
    empty = tmp_path / 'empty'
    empty.mkdir()
    r = _run('omniglot_fc_5w1s', '--smoke', '--logdir_root', str(root), '--data_dir', str(empty), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1] == (f'[reproduce] omniglot_fc_5w1s: training failed (exit status 2); see '
                                         f'{root}/omniglot_fc_5w1s/train.log')
    log = (root / 'omniglot_fc_5w1s' / 'train.log').read_text()
    assert 'main.py: error: ' in log
    with open(root / 'omniglot_fc_5w1s' / 'run.json') as f:
        sessions = json.load(f)['sessions']
    assert [(s['phase'], s['returncode'], s['iterations_after']) for s in sessions] == [('train', 2, 0)]


def fake_miniimagenet(root, classes=5, per_class=20, train_classes=30):
    """MiniImagenet folders train/val/test/<label>/*.jpg, random 84x84 pictures: enough for 5-way 5-shot
    training (5 + 15 examples per class) and ProtoNets' 30-way training episodes (`train_classes`)."""
    from PIL import Image
    rng = np.random.RandomState(0)
    for split in ('train', 'val', 'test'):
        for c in range(train_classes if split == 'train' else classes):
            d = os.path.join(root, split, f'n{split}{c:05d}')
            os.makedirs(d)
            for i in range(per_class):
                Image.fromarray(rng.randint(0, 256, (84, 84, 3), np.uint8)).save(os.path.join(d, f'{i:03d}.jpg'))
    return str(root)


@pytest.fixture(scope='module')
def mini_dir(tmp_path_factory):
    return fake_miniimagenet(tmp_path_factory.mktemp('mini') / 'miniImagenet')


@pytest.mark.slow
@pytest.mark.parametrize('name', list(EXPECTED))
def test_every_experiment_runs_in_smoke_mode(name, tmp_path, request):
    datasource = reproduce.EXPERIMENTS[name].datasource
    if datasource == 'omniglot':
        data = ['--data_dir', request.getfixturevalue('omniglot_dir')]
    elif datasource == 'miniimagenet':
        data = ['--data_dir', request.getfixturevalue('mini_dir')]
    else:
        data = []
    root = tmp_path / 'logs'
    r = _run(name, '--smoke', '--logdir_root', str(root), *data, cwd=tmp_path, timeout=2400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    check_smoke_run(str(root), name, data[1] if data else '')


@pytest.mark.slow
def test_sigterm_stops_main_py_and_is_recorded(tmp_path):
    """Stopping reproduce.py stops the training it started (no orphan keeps training) and records the session."""
    import time
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}
    root = tmp_path / 'logs'
    proc = subprocess.Popen([sys.executable, SCRIPT, 'sine_k10_maml', '--iterations', '1000000', '--logdir_root',
                             str(root)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        for line in proc.stdout:
            if line.startswith('Done initializing'):
                break
        with open(f'/proc/{proc.pid}/task/{proc.pid}/children') as f:
            children = [int(p) for p in f.read().split()]
        assert len(children) == 1
        proc.terminate()
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGTERM
    deadline = time.time() + 60
    while os.path.exists(f'/proc/{children[0]}') and time.time() < deadline:
        time.sleep(0.5)
    assert not os.path.exists(f'/proc/{children[0]}')
    with open(root / 'sine_k10_maml' / 'run.json') as f:
        record = json.load(f)
    (s,) = record['sessions']
    assert (s['phase'], s['returncode'], s['interrupted'], s['target_iterations']) == ('train', None, True, 1000000)
    assert s['end'] is not None and s['wall_s'] > 0 and record['planned_iterations'] == 70000


def _fake_runs(monkeypatch, fake_phase, done):
    """reproduce.py with main.py's phases replaced by `fake_phase` and the checkpoints by `done` {run folder:
    iterations in its latest checkpoint}, which `fake_phase` fills."""
    def fake_done(directory):
        n = next((v for k, v in done.items() if directory.startswith(k)), 0)
        return (n, os.path.join(directory, f'model{n - 1}')) if n else (0, None)
    monkeypatch.setattr(reproduce, '_run_phase', fake_phase)
    monkeypatch.setattr(reproduce, 'iterations_done', fake_done)


def test_a_diverged_training_is_a_result_tested_at_its_last_checkpoint(tmp_path, monkeypatch):
    """main.py's exit status 3 (nan/inf, nothing non-finite saved): its last good checkpoint is tested, the other
    seeds go on, reproduce.py ends with 3, the same command again does not retrain it, report.py marks it."""
    done = {}     # run folder -> iterations in its latest checkpoint
    calls = []

    def fake_phase(argv, log_path, echo, alive):
        phase, seed = os.path.basename(log_path)[:-4], next(a for a in argv if a.startswith('--seed='))[7:]
        folder = os.path.dirname(log_path)
        calls.append((phase, seed))
        if phase == 'train':
            done[folder] = 1000 if seed == '0' else 70000     # seed 0 diverges after its checkpoint model999
            return 3 if seed == '0' else 0
        return 0

    _fake_runs(monkeypatch, fake_phase, done)
    argv = ['sine_k5_maml', '--seeds', '0', '1', '--logdir_root', str(tmp_path)]
    assert reproduce.main(argv) == 3
    assert calls == [('train', '0'), ('test', '0'), ('train', '1'), ('test', '1')]
    calls.clear()
    assert reproduce.main(argv) == 3                      # neither trains again; both are tested again
    assert calls == [('test', '0'), ('test', '1')]
    spec = importlib.util.spec_from_file_location('report', os.path.join(REPO, 'scripts', 'report.py'))
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    e = reproduce.EXPERIMENTS['sine_k5_maml']
    assert [report.collect(e, str(tmp_path), seed)['diverged'] for seed in (0, 1)] == [True, False]


def test_the_authors_5shot_protocol_tests_the_1shot_model(tmp_path, monkeypatch):
    """omniglot_5w5s_from1s trains (and tests) omniglot_5w1s in its folder, then tests that model with K = 5 and
    --train_update_batch_size=1, recording the test in its own run.json; report.py reads that test's CSV."""
    done, calls = {}, []

    def fake_phase(argv, log_path, echo, alive):
        calls.append((os.path.relpath(log_path, tmp_path), [a for a in argv if a.startswith(
            ('--update_batch_size', '--train_update_batch_size', '--logdir'))]))
        if os.path.basename(log_path) == 'train.log':
            done[os.path.dirname(log_path)] = 60000
        return 0

    _fake_runs(monkeypatch, fake_phase, done)
    assert reproduce.main(['omniglot_5w5s_from1s', '--seeds', '3', '--logdir_root', str(tmp_path)]) == 0
    model = f'--logdir={tmp_path}/omniglot_5w1s/seed3'
    assert calls == [('omniglot_5w1s/seed3/train.log', ['--update_batch_size=1', model]),
                     ('omniglot_5w1s/seed3/test.log', ['--update_batch_size=1', model]),
                     ('omniglot_5w5s_from1s/seed3/test.log',
                      ['--update_batch_size=5', model, '--train_update_batch_size=1'])]
    with open(tmp_path / 'omniglot_5w5s_from1s' / 'seed3' / 'run.json') as f:
        record = json.load(f)
    assert [s['phase'] for s in record['sessions']] == ['test']
    assert record['exp_dir'] == 'omniglot_5w1s/seed3/cls_5.mbs_32.ubs_1.numstep1.updatelr0.4batchnorm'
    assert record['test_csv'] == record['exp_dir'] + '/test_ubs5_stepsize0.4.csv'


def test_a_session_killed_outright_keeps_when_it_was_last_seen(tmp_path, monkeypatch):
    """A training session whose process dies without a word (SIGKILL: no finally runs) has no end in run.json, but
    the heartbeat written while main.py printed says how long it ran (report.py counts it in the train wall)."""
    def fake_phase(argv, log_path, echo, alive):
        for _ in range(3):
            alive()
        with open(os.path.join(os.path.dirname(log_path), 'run.json')) as f:
            raise SystemExit(json.load(f))      # the record as a SIGKILL at this moment would leave it

    monkeypatch.setattr(reproduce, 'HEARTBEAT_S', 0)
    _fake_runs(monkeypatch, fake_phase, {})
    with pytest.raises(SystemExit) as killed:
        reproduce.main(['sine_k5_maml', '--logdir_root', str(tmp_path)])
    (s,) = killed.value.code['sessions']
    assert s['end'] is None and s['wall_s'] is None and s['last_seen'] >= s['start'] and s['wall_s_so_far'] >= 0
