#!/usr/bin/env python3
"""The paper's experiments, one registry entry each: train with main.py, then test as the original.

    python scripts/reproduce.py --list
    python scripts/reproduce.py NAME [NAME ...] [--logdir_root logs] [--data_dir DIR] [--iterations N]
    python scripts/reproduce.py NAME --smoke [--data_dir DIR]        # a quick run of the whole pipeline
    python scripts/reproduce.py NAME --dry_run                       # print the two main.py commands
    python scripts/reproduce.py NAME --seeds 0 1 2 3 4               # once per seed, a folder each

Each experiment of the original's usage notes (sinusoid K = 5, 10, 20 with MAML, the pretrained
baseline and the oracle; Omniglot 5-way and 20-way, 1-shot and 5-shot, conv and fully connected;
MiniImagenet 5-way 1-shot and 5-shot, second order and first order `--stop_grad`) is a list of
main.py flags with the paper's hyperparameters (Finn et al. 2017, Section 5 and Appendix A; where
the paper and the original's usage notes differ, the paper's, see `NOTES`). The learners beyond
MAML have entries `<method>_<omniglot|mini>_<N>w<K>s` with their own papers' hyperparameters and
numbers (Reptile, MAML++, Meta-SGD, ANIL, ProtoNets, Matching Networks, Baseline, Baseline++; see
`LEARNER_NOTES`, also for the many the 2-core CPU cannot finish), and `sine_k5_mamlpp` /
`sine_k5_metasgd` put MAML++'s MSL + LSLR and Meta-SGD on the K = 5 sinusoid. For each NAME it runs

    python main.py <flags> --logdir=<logdir_root>/<NAME>                                 (train)
    python main.py <flags> --logdir=<logdir_root>/<NAME> --train=False [--test_set=True] (test)

as subprocesses, so the run's files are main.py's own in `<logdir_root>/<NAME>/<exp_string>/`
(checkpoints, TensorBoard events, `test_ubs<K>_stepsize<lr>.csv`), plus, in `<logdir_root>/<NAME>/`,
`run.json` (commands, git commit, machine, start, end, wall time and iterations of every train
and test session) and `train.log` / `test.log` (main.py's output, appended per session).
The test is the original protocol: 600 tasks (sinusoid: the original's `np.random.seed(1)` tasks;
classification: the meta-test split, `--test_set=True`), max(10, num_updates) inner steps.

Resumable: the same command again continues training from the latest checkpoint (main.py's
resume, optimizer and data-stream state included), skips training once the checkpoint has all
iterations, and skips the test when its CSV is newer than the latest checkpoint.
`--iterations N` trains to N iterations instead of the paper's count (the experiment name does
not contain it, so a later run without it continues the same training).

`--smoke` checks the whole pipeline in minutes: every iteration count becomes SMOKE_ITERATIONS,
the meta batch SMOKE_META_BATCH, conv nets get SMOKE_FILTERS filters (so the experiment name
changes), classification tasks SMOKE_QUERY query example per class, no XLA, the test uses
SMOKE_TEST_TASKS tasks instead of 600 (`--protocol=reptile`: its fixed network and queries, and
--eval_samples=SMOKE_TEST_TASKS), and the logs go to `logs/smoke` unless --logdir_root is
given. (main.py has no flag for the number of test tasks, so a smoke run starts main.py's entry
point with `main.NUM_TEST_POINTS` set; see SMOKE_MAIN.)

A bad argument stops with one line, `reproduce.py: error: <what>; <how to fix>`, exit status 2,
before anything is written; a main.py phase that fails stops the run with its exit status, except a training that diverged
(main.py's exit status 3: nan/inf, nothing non-finite saved): that is a result, so its last good
checkpoint is tested, the other experiments and seeds go on, the same command again does not retrain it,
and reproduce.py ends with status 3 (report.py marks the run "diverged").
`--seeds S [S ...]` runs each experiment once per seed s (main.py `--seed=s`: initial weights and
task stream) in its own folder `<logdir_root>/<NAME>/seed<s>/`, laid out as above (its run.json,
train.log, test.log and `<exp_string>/`), one seed after the other, each resumable on its own.
With the same seed the sinusoid runs draw the same training tasks as the original code run with
`np.random.seed(s)` (main.py's data generator draws them from `np.random.RandomState(s)` in the
original's order), so the report pairs seed s with the original's seed s.

`scripts/report.py --logdir <logdir_root>` turns the logs into the results table.
"""
import argparse
import dataclasses
import datetime
import glob
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

PROG = 'reproduce.py'
RUN_FILE = 'run.json'
SEED_DIR = re.compile(r'^seed(\d+)$')     # <logdir_root>/<NAME>/seed<s>/: the run of NAME with --seed=s
SMOKE_ITERATIONS = 2
SMOKE_TEST_TASKS = 10
SMOKE_META_BATCH = 2
SMOKE_FILTERS = 8            # conv nets only (20-way 5-shot, meta batch 16, 64 filters: minutes per iteration on 2 cores)
SMOKE_QUERY = 1              # classification: query examples per class (MiniImagenet trains with 15)
SMOKE_ROOT = os.path.join('logs', 'smoke')
# main.py's entry point with fewer test tasks (smoke runs only); %d is the number of tasks
SMOKE_MAIN = ('import sys; sys.path.insert(0, {repo!r}); sys.argv[0] = "main.py"; import main; '
              'main.NUM_TEST_POINTS = %d; from absl import app; app.run(main.main, flags_parser=main.parse_flags)')


@dataclasses.dataclass(frozen=True)
class PaperResult:
    """A number the paper reports: after `step` inner steps at test time, `mean` ± `ci` (95%; None if not given).

    Kept as the paper prints them (strings, e.g. '48.70'), so the report shows the paper's digits.
    """
    step: int
    mean: str | None
    ci: str | None = None


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One experiment: main.py's training flags (without --logdir) and what the paper reports for it."""
    name: str
    title: str
    flags: tuple
    paper: tuple = ()          # PaperResult, in the metric's unit (MSE, or accuracy in %)
    paper_source: str = ''     # where in the paper the numbers are (which paper, for learners beyond MAML)
    steps: tuple = ()          # inner steps the report shows where the paper has no number
    paper_spread: str = ''     # what the paper's ± is where it is not a 95% CI over test tasks ('' if it is)
    trained_by: str = ''       # the experiment whose trained model this one tests ('' : its own training)
    test_changes: tuple = ()   # flags the test adds or replaces (e.g. another K) beyond --train=False

    @property
    def datasource(self):
        return dict(f[2:].split('=', 1) for f in self.flags)['datasource']

    @property
    def metric(self):
        """'mse' for sinusoid regression, 'accuracy' for classification (the CSV holds fractions)."""
        return 'mse' if self.datasource == 'sinusoid' else 'accuracy'


# The paper (Finn et al. 2017): sinusoid "one gradient update with K = 10 examples with a fixed step
# size alpha = 0.01", meta batch 25, Adam; Omniglot 5-way (conv and fc) 1 step of alpha = 0.4, meta
# batch 32, evaluated with 3 steps; 20-way 5 steps of alpha = 0.1 in training and test, meta batch 16;
# MiniImagenet 5 steps of alpha = 0.01, 10 at test, 15 query examples per class, meta batch 4 (1-shot)
# and 2 (5-shot), 32 filters, max pooling; "all models were trained for 60000 iterations".
# Sinusoid trains 70000 iterations, as the original's usage notes.
NOTES = (
    'Sinusoid: inner step size α = 0.01 as in the paper (the original main.py\'s default, which its usage '
    'notes keep, is 0.001); meta batch 25, one inner step, no normalisation, 70000 iterations (usage notes). '
    'The baselines use the same α at test time (the paper fine-tuned the pretrained model with an '
    '"automatically tuned step size"). The oracle is given each task\'s amplitude and phase and needs no '
    'adaptation: the report shows its MSE before adaptation, the horizontal line of the paper\'s figure '
    '(main.py still adapts it for 10 steps in the test, which the full curve shows).',
    'Omniglot: 60000 iterations, as the paper states for all models (the usage notes say 40000). '
    'The paper evaluates 5-way with 3 inner steps (main.py always runs 10 and writes all of them; the '
    'report reads the column after 3 steps) and 20-way with 5 steps (column 5).',
    'MiniImagenet: meta batch 2 for 5-shot as in the paper (the usage notes use 4 for both); 15 query '
    'examples per class in training (main.py\'s default for MiniImagenet, as the original); column after '
    '10 steps.',
    'All runs use --seed=0 (the original seeded nothing), so a rerun draws the same initial weights and tasks.',
)

# --steps_per_execution=100: 100 meta-iterations per compiled call, the same weights 2-3x sooner (docs/SPEED.md)
_SINE = ('--datasource=sinusoid', '--norm=None', '--meta_batch_size=25', '--update_lr=0.01', '--num_updates=1',
         '--seed=0', '--steps_per_execution=100')


def _sine(k, kind):
    if kind == 'maml':
        flags = ('--metatrain_iterations=70000',)
        title = f'sinusoid {k}-shot, MAML'
    elif kind == 'pretrained':
        flags = ('--pretrain_iterations=70000', '--metatrain_iterations=0')
        title = f'sinusoid {k}-shot, pretrained on all tasks'
    else:
        flags = ('--pretrain_iterations=70000', '--metatrain_iterations=0', '--baseline=oracle')
        title = f'sinusoid {k}-shot, oracle (amplitude and phase as inputs)'
    paper, source = (), 'figure only'
    # the oracle is given amplitude and phase: its number is the MSE before adaptation (the figure's line)
    steps = (0,) if kind == 'oracle' else (1, 5, 10)
    if k == 5 and kind == 'maml':
        paper, source = (PaperResult(1, '0.67'), PaperResult(5, '0.38'), PaperResult(10, '0.35')), 'appendix table'
    if k == 5 and kind == 'pretrained':
        paper, source = (PaperResult(1, '2.41'), PaperResult(5, '2.23'), PaperResult(10, '2.19')), 'appendix table'
    return Experiment(f'sine_k{k}_{kind}', title, _SINE + flags + (f'--update_batch_size={k}',), paper, source,
                      steps)


def _omniglot(ways, shots, conv=True):
    if ways == 5:
        flags = ('--meta_batch_size=32', '--update_lr=0.4', '--num_updates=1')
        step = 3
    else:
        flags = ('--meta_batch_size=16', '--update_lr=0.1', '--num_updates=5')
        step = 5
    paper = {(5, 1, True): ('98.7', '0.4'), (5, 5, True): ('99.9', '0.1'), (20, 1, True): ('95.8', '0.3'),
             (20, 5, True): ('98.9', '0.2'), (5, 1, False): ('89.7', '1.1'),
             (5, 5, False): ('97.5', '0.6')}[ways, shots, conv]
    name = f'omniglot_{"" if conv else "fc_"}{ways}w{shots}s'
    title = f'Omniglot {ways}-way {shots}-shot{"" if conv else ", fully connected (--conv=False)"}'
    flags = (('--datasource=omniglot', f'--num_classes={ways}', '--metatrain_iterations=60000')
             + flags + (f'--update_batch_size={shots}',) + (() if conv else ('--conv=False',)) + ('--seed=0',))
    return Experiment(name, title, flags, (PaperResult(step, *paper),), 'Table 1')


def _omniglot_from_1shot(conv=True):
    """The original author's protocol for Omniglot 5-way 5-shot (cbfinn/maml issue #3): the 1-shot model
    (omniglot_5w1s / omniglot_fc_5w1s, not trained again) tested with 5 examples per class in the inner loop
    (`--update_batch_size=5 --train_update_batch_size=1`); the paper's 5-shot number beside it."""
    shot1, shot5 = _omniglot(5, 1, conv), _omniglot(5, 5, conv)
    return dataclasses.replace(shot1, name=shot5.name + '_from1s', paper=shot5.paper, trained_by=shot1.name,
                               title=shot5.title + ', the 1-shot model tested 5-shot (the author\'s protocol)',
                               test_changes=('--update_batch_size=5', '--train_update_batch_size=1'))


def _mini(shots, first_order=False):
    paper = {(1, False): ('48.70', '1.84'), (5, False): ('63.11', '0.92'),
             (1, True): ('48.07', '1.75'), (5, True): ('63.15', '0.91')}[shots, first_order]
    flags = ('--datasource=miniimagenet', '--num_classes=5', '--metatrain_iterations=60000',
             f'--meta_batch_size={4 if shots == 1 else 2}', f'--update_batch_size={shots}', '--update_lr=0.01',
             '--num_updates=5', '--num_filters=32', '--max_pool=True') + (('--stop_grad=True',) if first_order else ())
    title = f'MiniImagenet 5-way {shots}-shot{", first order (--stop_grad)" if first_order else ""}'
    return Experiment(f'mini_5w{shots}s{"_fo" if first_order else ""}', title, flags + ('--seed=0',),
                      (PaperResult(10, *paper),), 'Table 2')


def _sine_inner(kind):
    """sine_k5_maml's flags with MAML++'s MSL and LSLR (`mamlpp`) or Meta-SGD's learned alphas (`metasgd`): does
    either keep the test MSE from rising after 3+ inner steps, as the original MAML's does on some tasks (issue
    14)? No paper number: the sinusoid is not in the MAML++ paper, and Meta-SGD's sinusoid (5-shot 0.90 ± 0.16
    after one step) uses its own task ranges."""
    base = _sine(5, 'maml').flags
    if kind == 'mamlpp':
        flags, title = ('--multi_step_loss=True', '--lslr=True'), 'sinusoid 5-shot, MAML + MSL + LSLR (MAML++)'
    elif kind == 'metasgd':
        flags, title = ('--method=metasgd',), 'sinusoid 5-shot, Meta-SGD'
    else:   # trained with 5 inner steps, where MAML++'s multi-step loss has steps to weigh
        base = tuple('--num_updates=5' if f == '--num_updates=1' else f for f in base)
        flags, title = {'maml_5steps': ((), 'sinusoid 5-shot, MAML trained with 5 inner steps'),
                        'msl_5steps': (('--multi_step_loss=True',),
                                       'sinusoid 5-shot, MAML + MSL (MAML++) trained with 5 inner steps')}[kind]
    return Experiment(f'sine_k5_{kind}', title, base + flags, (), 'not in the paper', (1, 2, 3, 5, 10))


def _omniglot_inner(method):
    """omniglot_5w1s's flags (MAML's) with ANIL, or with the MAML++ switches that act with one inner step (LSLR,
    per-step batch-norm weights, cosine meta learning rate; MSL and derivative-order annealing need several steps):
    the learners' curves beside MAML's from the same seeds (issue 14). Not --per_step_bn_stats: as in the released
    code it keeps running statistics that nothing normalises with, so it changes no number (docs/RESULTS.md,
    2026-12-07). No paper number."""
    flags, title = {'anil': (('--method=anil',), 'ANIL'),
                    'mamlpp': (('--lslr=True', '--per_step_bn=True', '--cosine_meta_lr=True'),
                               'MAML++ (LSLR, per-step BN weights, cosine meta lr)')}[method]
    base = _omniglot(5, 1)
    return Experiment(f'{method}_omniglot_5w1s', f'Omniglot 5-way 1-shot, {title}', base.flags[:-1] + flags
                      + ('--seed=0',), (), 'beside MAML (omniglot_5w1s)', (1, 3, 10))


# ---- learners beyond MAML: each paper's hyperparameters (also where this CPU cannot finish them) and numbers
LEARNER_NOTES = (
    'Reptile (Nichol et al. 2018, arXiv 1803.02999 v3, Tables 1-2): the flags of openai/supervised-reptile\'s '
    'README (equal to the paper\'s Appendix A): inner Adam(β1 = 0), ε linear from 1 to 0, meta batch 5, 50 '
    'evaluation steps (the column after 50 steps). Omniglot with --protocol=reptile (its random 1200/423 split, '
    'stride-2 network, one query per class, 10000 test tasks); MiniImagenet has no --protocol=reptile here, so '
    'its rows use MAML\'s network (32 filters, max-pool), split and 600 test tasks with one query per class '
    '(--num_query=1, as its evaluation), which is not the reference\'s protocol. "_trans" rows: --transductive.',
    'MAML++ (Antoniou et al. 2019) MiniImagenet: the released config (5 inner steps, MSL over 15 epochs of 500 '
    'iterations, LSLR initialised at 0.1 as the released code does, per-step batch-norm weights (its per-step '
    'running statistics are kept but never normalise; --per_step_bn_stats, which does the same, changes no number'
    ' and is off), '
    'DA off, constant meta learning rate, meta batch 2, 48 filters, 15 queries per class, 100 epochs = 50000 '
    'iterations); the column after 5 steps. The paper\'s number is the mean ± std over 3 seeds of an ensemble of '
    'the top-5 validation epochs; the port has no ensemble, so the comparison is approximate.',
    'Meta-SGD (Li et al. 2017) MiniImagenet: MAML\'s MiniImagenet flags with one inner step (the paper\'s), alphas '
    'initialised to --update_lr = 0.01 (the paper draws them from [0.005, 0.1]); the column after 1 step. ANIL '
    '(Raghu et al. 2020) MiniImagenet: MAML\'s MiniImagenet flags; the column after 10 steps.',
    'ProtoNets (Snell et al. 2017): Omniglot trained 60-way with 5 queries per class and the test\'s shots, '
    'MiniImagenet 30-way 1-shot / 20-way 5-shot with 15 queries; Adam 1e-3 halved every 2000 episodes (meta batch '
    '1). The reference stops early on validation (up to 10000 epochs of 100 episodes); the port has no early '
    'stopping: 20000 episodes, after which the learning rate is below 1e-6. 600 test tasks (the paper: 1000 on '
    'Omniglot). Matching Networks (Vinyals et al. 2016; numbers via ProtoNets Tables 1-2) the same way, trained '
    'at the test\'s ways; the MiniImagenet numbers are with full-context embeddings (FCE), which the port lacks '
    '(without FCE the table gives 43.40 ± 0.78 / 51.09 ± 0.71).',
    'Baseline / Baseline++ (Chen et al. 2019, Conv-4, the authors\' result sheet): pre-training on the 64 '
    'MiniImagenet classes, batch 16, 400 epochs = 960000 mini-batches (38400 images / 16 x 400), without the '
    'reference\'s --train_aug; fine-tuning 100 epochs of batch 4, SGD 0.01; 15 queries per class; no inner steps '
    '(column 0).',
)
NOTES = NOTES + LEARNER_NOTES

REPTILE = 'Reptile, arXiv 1803.02999 v3'
_REPTILE_SHARED = ('--method=reptile', '--meta_step=1', '--meta_step_final=0', '--meta_batch_size=5',
                   '--eval_iters=50')


def _reptile(datasource, ways, shots, transductive=False):
    """A row of Reptile's Tables 1-2 with its README flags (Omniglot --protocol=reptile, MiniImagenet MAML's)."""
    if datasource == 'omniglot':
        paper = {(5, 1, False): ('95.39', '0.09'), (5, 5, False): ('98.90', '0.10'),
                 (20, 1, False): ('88.14', '0.15'), (20, 5, False): ('96.65', '0.33'),
                 (5, 1, True): ('97.68', '0.04'), (5, 5, True): ('99.48', '0.06'),
                 (20, 1, True): ('89.43', '0.14'), (20, 5, True): ('97.12', '0.32')}[ways, shots, transductive]
        if ways == 5:
            flags = ('--inner_batch=10', '--inner_iters=5', '--metatrain_iterations=100000', '--eval_batch=5',
                     '--update_lr=0.001')
        else:
            flags = ('--inner_batch=20', '--inner_iters=10', '--metatrain_iterations=200000', '--eval_batch=10',
                     '--update_lr=0.0005')
        flags = ('--datasource=omniglot', '--protocol=reptile', f'--num_classes={ways}') + flags + (
            '--train_shots=10', '--eval_samples=10000')
        source, data = REPTILE + ', Table 1', 'Omniglot'
    else:
        paper = {(1, False): ('47.07', '0.26'), (5, False): ('62.74', '0.37'),
                 (1, True): ('49.97', '0.32'), (5, True): ('65.99', '0.58')}[shots, transductive]
        flags = ('--datasource=miniimagenet', '--num_classes=5', '--inner_batch=10', '--inner_iters=8',
                 '--metatrain_iterations=100000', f'--eval_batch={5 if shots == 1 else 15}', '--update_lr=0.001',
                 '--train_shots=15', '--num_filters=32', '--max_pool=True', '--num_query=1')
        source, data = REPTILE + ', Table 2 (MAML\'s split and network: no --protocol=reptile for MiniImagenet)', \
            'MiniImagenet'
    flags += (f'--update_batch_size={shots}',) + _REPTILE_SHARED + (('--transductive=True',) if transductive else ())
    short = 'omniglot' if datasource == 'omniglot' else 'mini'
    title = f'{data} {ways}-way {shots}-shot, Reptile{", transductive" if transductive else ""}'
    return Experiment(f'reptile_{short}_{ways}w{shots}s{"_trans" if transductive else ""}', title,
                      flags + ('--seed=0',), (PaperResult(50, *paper),), source)


def _mini_inner(method, shots):
    """MAML++ (the released MiniImagenet config), Meta-SGD or ANIL on MiniImagenet 5-way."""
    if method == 'mamlpp':
        paper, step = {1: ('52.15', '0.26'), 5: ('68.32', '0.44')}[shots], 5
        flags = ('--meta_batch_size=2', '--update_lr=0.1', '--num_updates=5', '--num_filters=48',
                 '--max_pool=True', '--num_query=15', '--metatrain_iterations=50000', '--multi_step_loss=True',
                 '--multi_step_loss_epochs=15', '--lslr=True', '--per_step_bn=True')
        title, source = 'MAML++ (MSL, LSLR, per-step BN)', ('MAML++ (Antoniou et al. 2019), a top-5 validation '
                                                            'ensemble (none here)')
    else:
        maml_flags = _mini(shots).flags[:-1]      # without --seed
        if method == 'metasgd':
            paper, step = {1: ('50.47', '1.87'), 5: ('64.03', '0.94')}[shots], 1
            flags = tuple('--num_updates=1' if f.startswith('--num_updates=') else f for f in maml_flags) + (
                '--method=metasgd',)
            title, source = 'Meta-SGD', 'Meta-SGD (Li et al. 2017)'
        else:
            paper, step = {1: ('46.7', '0.4'), 5: ('61.5', '0.5')}[shots], 10
            flags = maml_flags + ('--method=anil',)
            title, source = 'ANIL', 'ANIL (Raghu et al. 2020)'
    if method == 'mamlpp':
        flags = ('--datasource=miniimagenet', '--num_classes=5', f'--update_batch_size={shots}') + flags
    return Experiment(f'{method}_mini_5w{shots}s', f'MiniImagenet 5-way {shots}-shot, {title}', flags + ('--seed=0',),
                      (PaperResult(step, *paper),), source,
                      paper_spread='std over 3 seeds' if method == 'mamlpp' else '')


def _metric(method, datasource, ways, shots):
    """ProtoNets or Matching Networks (without FCE) with ProtoNets' training set-up."""
    omniglot = datasource == 'omniglot'
    if method == 'protonet':
        paper = ({(5, 1): ('98.8', None), (5, 5): ('99.7', None), (20, 1): ('96.0', None), (20, 5): ('98.9', None)}
                 if omniglot else {(5, 1): ('49.42', '0.78'), (5, 5): ('68.20', '0.66')})[ways, shots]
        train_ways = 60 if omniglot else (30 if shots == 1 else 20)
        title, source = 'Prototypical Networks', 'ProtoNets (Snell et al. 2017), Table ' + ('1' if omniglot else '2')
    else:
        paper = ({(5, 1): ('98.1', None), (5, 5): ('98.9', None), (20, 1): ('93.8', None), (20, 5): ('98.5', None)}
                 if omniglot else {(5, 1): ('43.56', '0.84'), (5, 5): ('55.31', '0.73')})[ways, shots]
        train_ways = None
        title = 'Matching Networks (no FCE)'
        source = ('Matching Networks (Vinyals et al. 2016) via ProtoNets Table 1' if omniglot else
                  'Matching Networks with FCE (Ravi & Larochelle) via ProtoNets Table 2; the port has no FCE')
    flags = (f'--datasource={datasource}', f'--method={method}', f'--num_classes={ways}', f'--update_batch_size={shots}',
             '--meta_batch_size=1', '--metatrain_iterations=20000')
    if train_ways:
        flags += (f'--train_classes={train_ways}',)
    if not omniglot:
        flags += ('--num_query=15',)
    short = 'omniglot' if omniglot else 'mini'
    data = 'Omniglot' if omniglot else 'MiniImagenet'
    return Experiment(f'{method}_{short}_{ways}w{shots}s', f'{data} {ways}-way {shots}-shot, {title}',
                      flags + ('--seed=0',), (PaperResult(0, *paper),), source)


def _finetune(method, shots):
    """Baseline / Baseline++ on MiniImagenet 5-way (Conv-4)."""
    paper = {('baseline', 1): ('42.11', '0.71'), ('baseline', 5): ('62.53', '0.69'),
             ('baseline_pp', 1): ('48.24', '0.75'), ('baseline_pp', 5): ('66.43', '0.63')}[method, shots]
    flags = ('--datasource=miniimagenet', f'--method={method}', '--num_classes=5', f'--update_batch_size={shots}',
             '--metatrain_iterations=960000', '--num_query=15', '--seed=0')
    title = 'Baseline' if method == 'baseline' else 'Baseline++'
    return Experiment(f'{method}_mini_5w{shots}s', f'MiniImagenet 5-way {shots}-shot, {title} (Conv-4)', flags,
                      (PaperResult(0, *paper),), 'Chen et al. 2019, the authors\' result sheet (Conv-4)')


EXPERIMENTS = {e.name: e for e in (
    [_sine(k, kind) for k in (5, 10, 20) for kind in ('maml', 'pretrained', 'oracle')]
    + [_omniglot(w, s) for w in (5, 20) for s in (1, 5)]
    + [_omniglot(5, s, conv=False) for s in (1, 5)]
    + [_omniglot_from_1shot(conv) for conv in (True, False)]
    + [_mini(s, fo) for s in (1, 5) for fo in (False, True)]
    + [_sine_inner(kind) for kind in ('mamlpp', 'metasgd', 'maml_5steps', 'msl_5steps')]
    + [_omniglot_inner(m) for m in ('anil', 'mamlpp')]
    + [_reptile('omniglot', w, s, t) for t in (False, True) for w in (5, 20) for s in (1, 5)]
    + [_reptile('miniimagenet', 5, s, t) for t in (False, True) for s in (1, 5)]
    + [_mini_inner(m, s) for m in ('mamlpp', 'metasgd', 'anil') for s in (1, 5)]
    + [_metric(m, d, w, s) for m in ('protonet', 'matchingnet') for d, w in
       (('omniglot', 5), ('omniglot', 20), ('miniimagenet', 5)) for s in (1, 5)]
    + [_finetune(m, s) for m in ('baseline', 'baseline_pp') for s in (1, 5)])}


class UsageError(Exception):
    """Something the user can fix; the message is one line: '<what is wrong>; <how to fix>'."""


# ------------------------------------------------------------------------------------ commands
def _with(flags, **values):
    """`flags` with --name=value set for each of `values` (replaced in place, or appended)."""
    flags = list(flags)
    for name, value in values.items():
        item = f'--{name}={value}'
        at = [i for i, f in enumerate(flags) if f.startswith(f'--{name}=')]
        if at:
            flags[at[0]] = item
        else:
            flags.append(item)
    return flags


def run_folder(logdir_root, name, seed=None):
    """`<logdir_root>/<name>`, the folder of an experiment's run; `<logdir_root>/<name>/seed<seed>` for one seed."""
    folder = os.path.join(logdir_root, name)
    return folder if seed is None else os.path.join(folder, f'seed{seed}')


def seeds_run(folder):
    """The seeds s of the `seed<s>/` folders in an experiment's `folder`, sorted (empty if none)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(int(m.group(1)) for m in map(SEED_DIR.match, names)
                  if m and os.path.isdir(os.path.join(folder, m.group(0))))


def train_flags(experiment, logdir, data_dir='', iterations=None, smoke=False, seed=None):
    """main.py's training flags of `experiment` writing into `logdir`.

    `iterations` replaces the total iteration count (kept in whichever of pretraining or
    meta-training the experiment uses); `smoke` makes it SMOKE_ITERATIONS, shrinks the meta batch
    and the conv filters and turns XLA off (and --steps_per_execution with it; with `--protocol=reptile`, whose network and queries are
    fixed: SMOKE_TEST_TASKS --eval_samples instead of fewer filters and queries); `seed` replaces
    the registry's --seed.
    """
    flags = list(experiment.flags)
    if seed is not None:
        flags = _with(flags, seed=seed)
    if smoke:
        iterations = SMOKE_ITERATIONS
    if iterations is not None:
        values = dict(f[2:].split('=', 1) for f in flags)
        key = 'pretrain_iterations' if int(values.get('metatrain_iterations', 0)) == 0 else 'metatrain_iterations'
        flags = _with(flags, **{key: iterations})
    if smoke:
        flags = _with(flags, meta_batch_size=SMOKE_META_BATCH, xla=False)
        if any(f.startswith('--steps_per_execution=') for f in flags):   # a loop of steps needs XLA
            flags = _with(flags, steps_per_execution=1)
        if '--protocol=reptile' in flags:   # its network and one query per class are fixed; its test tasks:
            flags = _with(flags, eval_samples=SMOKE_TEST_TASKS)   # --eval_samples, not main.NUM_TEST_POINTS
        elif experiment.datasource != 'sinusoid':
            flags = _with(flags, num_query=SMOKE_QUERY)
            if '--conv=False' not in flags:
                flags = _with(flags, num_filters=SMOKE_FILTERS)
    if data_dir and experiment.datasource != 'sinusoid':
        flags = _with(flags, data_dir=data_dir)
    return _with(flags, logdir=logdir)


def test_flags(experiment, train):
    """main.py's test flags: the training flags, the experiment's `test_changes` and --train=False
    (--test_set=True for classification)."""
    test = _with(train, **dict(f[2:].split('=', 1) for f in experiment.test_changes))
    return test + ['--train=False'] + ([] if experiment.datasource == 'sinusoid' else ['--test_set=True'])


def parse_config(flags):
    """The Config main.py makes of `flags` (checked by main.check_config as main.py does, flags that mean nothing
    to the method included); raises UsageError."""
    import main
    from absl import flags as absl_flags
    fv = absl_flags.FlagValues()
    main.define_flags(fv)
    try:
        fv(['main.py', *flags])
        config = main.config_from_flags(fv)
        main.check_config(config, main.explicit_flags(fv))   # also: a flag the method does not take
    except (absl_flags.Error, main.UsageError) as e:
        raise UsageError(f'main.py rejects the flags {" ".join(flags)} ({e}); fix the registry entry') from None
    return config


def iterations_of(config):
    """The iterations a run of `config` trains: pretraining plus meta-training."""
    return config.pretrain_iterations + config.metatrain_iterations


def exp_dir(config):
    """`<logdir>/<exp_string>`, where main.py writes the run."""
    import config as config_lib
    return os.path.join(config.logdir, config_lib.exp_string(config))


def test_csv(config):
    """The test CSV main.py writes for `config` (test_ubs<K>_stepsize<lr>.csv)."""
    from infra import results
    return results.test_file_prefix(config) + '.csv'


def iterations_done(directory):
    """(iterations done, latest checkpoint prefix) of the run in `directory`; (0, None) without one.

    main.py saves `model<itr>` after iteration itr, holding itr + 1 iterations done.
    """
    import main
    prefix = main.latest_checkpoint(directory)
    if not prefix:
        return 0, None
    return int(re.search(r'model(\d+)$', prefix).group(1)) + 1, prefix


def command_line(argv):
    """`argv` as one shell line, main.py named relative to the repository."""
    return ' '.join(shlex.quote(a) for a in argv)


def main_argv(flags, test_tasks=None):
    """The subprocess argv running main.py with `flags`; `test_tasks`: the smoke entry point instead."""
    if test_tasks is None:
        return [sys.executable, os.path.join(REPO, 'main.py'), *flags]
    return [sys.executable, '-c', SMOKE_MAIN.format(repo=REPO) % test_tasks, *flags]


def shown_command(flags, test_tasks=None):
    """The command as recorded and printed: `python main.py <flags>` (smoke: says the test task count)."""
    line = command_line(['python', 'main.py', *flags])
    return line if test_tasks is None else f'{line}  # smoke entry point, {test_tasks} test tasks'


# ------------------------------------------------------------------------------------ machine
def machine():
    """A description of this machine for the report: CPU, logical CPUs, GPU, TensorFlow, Python."""
    from importlib import metadata
    cpu, flags, hypervisor = platform.processor() or platform.machine(), '', False
    try:
        with open('/proc/cpuinfo') as f:
            text = f.read()
        cpu = re.search(r'^model name\s*:\s*(.+)$', text, re.M).group(1).strip()
        flags = re.search(r'^flags\s*:\s*(.+)$', text, re.M).group(1).split()
        hypervisor = 'hypervisor' in flags
    except (OSError, AttributeError):
        pass
    tf_version = 'not installed'
    for dist in ('tensorflow', 'tensorflow-cpu'):
        try:
            tf_version = f'{metadata.version(dist)} ({dist})'
            break
        except metadata.PackageNotFoundError:
            continue
    gpus = sorted(glob.glob('/dev/nvidia[0-9]*'))
    return {
        'cpu': cpu,
        'logical_cpus': os.cpu_count(),
        'avx512': 'avx512f' in flags,
        'virtual_machine': hypervisor,
        'gpu': ', '.join(gpus) if gpus else 'none',
        'tensorflow': tf_version,
        'python': platform.python_version(),
        'os': platform.platform(),
    }


def git_commit():
    """The checked-out commit (with '+dirty' if tracked files are modified), or 'unknown'."""
    try:
        head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO, capture_output=True,
                              text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=REPO,
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    return (head + ('+dirty' if dirty else '')) if head else 'unknown'


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')


# ------------------------------------------------------------------------------------ run record
def load_record(path):
    """The run record (run.json) at `path`, or None if there is none."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def save_record(path, record):
    """Writes `record` as JSON through a temporary file and a rename."""
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(record, f, indent=1)
        f.write('\n')
    os.replace(tmp, path)


def _run_phase(argv, log_path, echo, alive=None):
    """Runs `argv`, appending its output (stdout and stderr) to `log_path` and echoing it; returns the status.
    `alive()` is called after every line main.py prints.

    If this process is stopped (Ctrl-C, SIGTERM), main.py is stopped too (it resumes from its last
    checkpoint next time) rather than left training on its own.
    """
    env = {**os.environ, 'PYTHONUNBUFFERED': '1'}
    env.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    with open(log_path, 'a') as log:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if echo:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                if alive:
                    alive()
            return proc.wait()
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


HEARTBEAT_S = 60    # how often a running session's record notes that it is still alive (last_seen, wall_s_so_far)
EXIT_DIVERGED = 3   # main.py's exit status when the training objective or a weight became nan/inf (infra/checks.py EXIT_DIVERGED)


def run_experiment(experiment, logdir_root, data_dir='', iterations=None, smoke=False, echo=True, seed=None):
    """Trains `experiment` (resuming) and tests it unless done; returns 0 or the failing phase's status.

    Every session is appended to `<logdir_root>/<name>/run.json` (`<name>/seed<seed>/run.json`
    with `seed`) when it starts and completed when it ends: phase, command, start, end, wall
    seconds, exit status, load average, iterations before, after and aimed at (train) or the
    checkpoint tested (test). `planned_iterations` is the paper's count (the smoke count for a
    smoke run), whatever `iterations` says. An experiment `trained_by` another runs that one first (its
    training and test, recorded in its own folder) and then only tests its model, recording the test here.
    """
    logdir = model_logdir = run_folder(logdir_root, experiment.name, seed)
    label = experiment.name if seed is None else f'{experiment.name}/seed{seed}'
    if experiment.trained_by:   # another experiment's model: train (and test) that one first, in its folder
        model_logdir = run_folder(logdir_root, experiment.trained_by, seed)
        trained = run_experiment(EXPERIMENTS[experiment.trained_by], logdir_root, data_dir, iterations, smoke, echo,
                                 seed)
        if trained not in (0, EXIT_DIVERGED):
            return trained
    train = train_flags(experiment, model_logdir, data_dir, iterations, smoke, seed)
    test = test_flags(experiment, train)
    config = parse_config(train)
    test_config = parse_config(test)
    total = iterations_of(config)
    planned = total if smoke else iterations_of(parse_config(train_flags(experiment, logdir)))
    tasks = SMOKE_TEST_TASKS if smoke else None
    os.makedirs(logdir, exist_ok=True)
    record_path = os.path.join(logdir, RUN_FILE)
    record = load_record(record_path) or {'experiment': experiment.name, 'sessions': [], 'notes': []}
    if seed is not None:
        record['seed'] = seed
    record.update(title=experiment.title, smoke=smoke, train_command=shown_command(train, tasks),
                  test_command=shown_command(test, tasks), machine=machine(),
                  exp_dir=os.path.relpath(exp_dir(config), logdir_root), test_csv=os.path.relpath(
                      test_csv(test_config), logdir_root), planned_iterations=planned)

    directory = exp_dir(config)

    def session(phase, flags, **extra):
        """Runs one main.py phase and records it; returns its exit status. An interrupted one is
        recorded too (end, wall, returncode None, interrupted), and the interruption goes on; one killed
        outright (SIGKILL, the machine going away) keeps `last_seen` and `wall_s_so_far`, noted every
        HEARTBEAT_S seconds while main.py prints."""
        entry = {'phase': phase, 'command': shown_command(flags, tasks), 'git_commit': git_commit(),
                 'start': _now(), 'end': None, 'wall_s': None, 'returncode': None,
                 'load_average_start': list(os.getloadavg()), **extra}
        record['sessions'].append(entry)
        save_record(record_path, record)
        t0 = noted = time.perf_counter()
        print(f'[reproduce] {label} {phase}: {entry["command"]}', flush=True)

        def alive():
            nonlocal noted
            if time.perf_counter() - noted >= HEARTBEAT_S:
                noted = time.perf_counter()
                entry.update(last_seen=_now(), wall_s_so_far=round(noted - t0, 1))
                save_record(record_path, record)

        status = None
        try:
            status = _run_phase(main_argv(flags, tasks), os.path.join(logdir, phase + '.log'), echo, alive)
        finally:
            entry.update(end=_now(), wall_s=round(time.perf_counter() - t0, 1), returncode=status,
                         load_average_end=list(os.getloadavg()))
            if status is None:
                entry['interrupted'] = True
            if phase == 'train':
                entry['iterations_after'] = iterations_done(directory)[0]
            save_record(record_path, record)
        return status

    done, _ = iterations_done(directory)
    trains = [s for s in record['sessions'] if s.get('phase') == 'train']
    diverged = bool(trains) and trains[-1].get('returncode') == EXIT_DIVERGED and \
        trains[-1].get('iterations_after') == done
    if experiment.trained_by:
        diverged = trained == EXIT_DIVERGED
    elif done >= total:
        print(f'[reproduce] {label}: trained ({done} of {total} iterations), not training again',
              flush=True)
    elif diverged:   # seeded: training again from the same checkpoint diverges again
        print(f'[reproduce] {label}: its training diverged after {done} iterations (see train.log), not training '
              f'again (to retry, delete {directory} or change the flags)', flush=True)
    else:
        status = session('train', train, iterations_before=done, target_iterations=total)
        diverged = status == EXIT_DIVERGED and iterations_done(directory)[1] is not None
        if diverged:
            print(f'[reproduce] {label}: training diverged (see {os.path.join(logdir, "train.log")}); testing its '
                  f'last good checkpoint, then going on', file=sys.stderr, flush=True)
        elif status:
            print(f'[reproduce] {label}: training failed (exit status {status}); see '
                  f'{os.path.join(logdir, "train.log")}', file=sys.stderr, flush=True)
            return status
    done, prefix = iterations_done(directory)
    csv_path = test_csv(test_config)
    if os.path.isfile(csv_path) and os.path.getmtime(csv_path) >= os.path.getmtime(prefix + '.index'):
        print(f'[reproduce] {label}: {csv_path} is newer than {os.path.basename(prefix)}, not testing '
              f'again', flush=True)
        return EXIT_DIVERGED if diverged else 0
    status = session('test', test, checkpoint=os.path.basename(prefix), iterations=done, test_tasks=tasks or 600)
    if status:
        print(f'[reproduce] {label}: test failed (exit status {status}); see '
              f'{os.path.join(logdir, "test.log")}', file=sys.stderr, flush=True)
    return status or (EXIT_DIVERGED if diverged else 0)


# ------------------------------------------------------------------------------------ CLI
def fail(message, status=2, prog=PROG):
    """Prints `<prog>: error: <message>` as one line on stderr and exits (also report.py's)."""
    print(f'{prog}: error: ' + ' '.join(str(message).split()), file=sys.stderr)
    sys.exit(status)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one `fail` line pointing at --help, instead of argparse's usage dump."""
    def error(self, message):
        fail(f'{message}; see python scripts/{self.prog} --help', prog=self.prog)


def parse_args(argv):
    p = _Parser(prog=PROG, description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog=__doc__[__doc__.index('\n') + 1:])
    p.add_argument('names', nargs='*', metavar='NAME', help='experiments to run, in order (see --list); all: every one')
    p.add_argument('--list', action='store_true', help='list the experiments and their flags, then exit')
    p.add_argument('--logdir_root', help=f'where each experiment gets its folder <NAME> (default logs, '
                                         f'{SMOKE_ROOT} with --smoke)')
    p.add_argument('--data_dir', default='', help='Omniglot / MiniImagenet files (main.py --data_dir; '
                                                  'default ./data/..., see docs/DATA.md)')
    p.add_argument('--iterations', type=int, help='train to this many iterations instead of the paper\'s count')
    p.add_argument('--smoke', action='store_true',
                   help=f'{SMOKE_ITERATIONS} iterations, meta batch {SMOKE_META_BATCH}, {SMOKE_FILTERS} conv filters, '
                        f'{SMOKE_QUERY} query example per class, no XLA, {SMOKE_TEST_TASKS} test tasks')
    p.add_argument('--seeds', type=int, nargs='+', metavar='S',
                   help='run each experiment once per seed S (main.py --seed=S) in <logdir_root>/<NAME>/seed<S>/')
    p.add_argument('--dry_run', action='store_true', help='print the train and test commands, run nothing')
    args = p.parse_args(argv)
    if args.names == ['all']:
        args.names = list(EXPERIMENTS)
    unknown = [n for n in args.names if n not in EXPERIMENTS]
    if unknown:
        p.error(f'unknown experiment {unknown[0]!r} (known: {", ".join(EXPERIMENTS)})')
    if not args.names and not args.list:
        p.error('name at least one experiment, or pass --list')
    if args.iterations is not None and args.iterations < 1:
        p.error(f'--iterations={args.iterations} must be >= 1')
    if args.iterations is not None and args.smoke:
        p.error('--iterations and --smoke both set the iteration count; pass one of them')
    if args.seeds is not None and (min(args.seeds) < 0 or len(set(args.seeds)) != len(args.seeds)):
        p.error(f'--seeds {" ".join(map(str, args.seeds))}: seeds must be >= 0 and different')
    if args.data_dir and not os.path.isdir(args.data_dir):
        p.error(f'--data_dir={args.data_dir} is not a folder')
    if args.logdir_root is None:
        args.logdir_root = SMOKE_ROOT if args.smoke else 'logs'
    return args


def list_experiments():
    """One block per experiment: name, title, paper numbers, training flags."""
    lines = []
    for e in EXPERIMENTS.values():
        paper = ', '.join(f'{r.step} steps {r.mean}' + ('' if r.ci is None else f' ± {r.ci}')
                          for r in e.paper) or 'none'
        lines.append(f'{e.name}: {e.title}; paper ({e.paper_source}): {paper}')
        lines.append('    python main.py ' + ' '.join(e.flags))
    return '\n'.join(lines)


def _stop(signum, frame):
    raise SystemExit(128 + signum)


def main(argv=None):
    signal.signal(signal.SIGTERM, _stop)     # so that _run_phase stops main.py too
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        print(list_experiments())
        return 0
    runs = [(name, seed) for name in args.names for seed in (args.seeds or [None])]
    try:
        for name, seed in runs:   # every command is checked before anything runs
            e = EXPERIMENTS[name]
            train = train_flags(e, run_folder(args.logdir_root, name, seed), args.data_dir, args.iterations,
                                args.smoke, seed)
            parse_config(train)
            parse_config(test_flags(e, train))
            if args.dry_run:
                tasks = SMOKE_TEST_TASKS if args.smoke else None
                print(shown_command(train, tasks))
                print(shown_command(test_flags(e, train), tasks))
        if args.dry_run:
            return 0
        try:
            os.makedirs(args.logdir_root, exist_ok=True)
        except OSError as err:
            raise UsageError(f'cannot create --logdir_root={args.logdir_root} ({err.strerror}); '
                             f'choose another folder') from None
    except UsageError as e:
        fail(e)
    diverged = False
    for name, seed in runs:
        status = run_experiment(EXPERIMENTS[name], args.logdir_root, args.data_dir, args.iterations, args.smoke,
                                seed=seed)
        if status == EXIT_DIVERGED:   # a result (tested at its last good checkpoint): the other runs go on
            diverged = True
        elif status:
            return status
    return EXIT_DIVERGED if diverged else 0


if __name__ == '__main__':
    sys.exit(main())
