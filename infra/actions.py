"""The training loop's periodic work, as small named actions that main.py's train() runs when they are due.

The loop itself only runs the learner's steps (`Steps`); everything else an iteration may do is an action
with `begin(itr, batch)` (before the step, which sees the weights the step starts from: the original
evaluated its summaries with the update, i.e. on the weights before it), `end(itr, objective)` (after
it) and `close(itr)` (once, after the last iteration). In the order they run, as the original's train():
`FirstIteration` (the first iteration of each phase apart: it traces and compiles the step), `Summaries`
(every `Intervals.summary`), `Prints` (the original's `Iteration N: pre, post` line, s/it, ETA), `Checkpoints`
(every `Intervals.save`, nothing non-finite ever saved), `Validation` (the original's `Validation results` line). `reads_weights_after(itr)`
tells `Steps` where a chunk of several steps per compiled call (--steps_per_execution) has to end.
"""
import dataclasses
import json
import os
import re
import time

import numpy as np

import config as config_lib
from infra.checkpoints import CHECKPOINT_STATE
from infra.checks import TrainingDiverged

PROGRESS_SECONDS = 30       # a progress line at least this often between the original's prints
COMPILE_RECORD = '.first_iteration.json'   # in the experiment folder: {phase: seconds of its last first iteration}


def read_compile_seconds(exp_dir):
    """{phase: seconds} of the first iterations last run in `exp_dir` ({} if none recorded)."""
    try:
        with open(os.path.join(exp_dir, COMPILE_RECORD)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_compile_seconds(exp_dir, phase, seconds):
    """Records the first iteration of `phase` took `seconds` (best effort: a folder that cannot take it is no error,
    and a file half-written by a crash reads as nothing recorded)."""
    record = dict(read_compile_seconds(exp_dir), **{phase: round(seconds, 1)})
    try:
        with open(os.path.join(exp_dir, COMPILE_RECORD), 'w') as f:
            f.write(json.dumps(record) + '\n')
    except OSError:
        pass


@dataclasses.dataclass(frozen=True)
class Intervals:
    """The original train()'s intervals (in iterations)."""
    summary: int = 100
    save: int = 1000
    print: int = 1000
    test_print: int = 5000

    @classmethod
    def for_config(cls, config):
        p = 1000 if config_lib.regression(config) else 100
        return cls(summary=100, save=1000, print=p, test_print=5 * p)


def tf1_tag(name):
    """The tag TF1's tf.summary.scalar wrote for `name`: characters other than [-/\\w.] become '_'.

    So the original's 'metatrain_Post-update loss, step 1' is 'metatrain_Post-update_loss__step_1'
    in its event files; we write the same tags.
    """
    return re.sub(r'[^-/\w.]', '_', name).lstrip('/')


def summary_values(out, classification):
    """{summary name: value} of a MetaOutput, named as the original's summaries (prefix not included)."""
    values = {'Pre-update loss': out.total_loss1}
    if classification:
        values['Pre-update accuracy'] = out.total_accuracy1
    for j in range(int(out.total_losses2.shape[0]) if out.total_losses2 is not None else 0):
        values['Post-update loss, step ' + str(j + 1)] = out.total_losses2[j]
        if classification:
            values['Post-update accuracy, step ' + str(j + 1)] = out.total_accuracies2[j]
    return values


def write_scalars(writer, prefix, values, step):
    """Writes {name: value} as TF1-tagged scalars `prefix + name` at `step` (what the original's merged summaries held)."""
    import tensorflow as tf
    metadata = tf.compat.v1.SummaryMetadata(
        plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name='scalars')).SerializeToString()
    with writer.as_default():
        for name, value in values.items():
            tf.summary.write(tf1_tag(prefix + name), tf.cast(value, tf.float32), step=step, metadata=metadata)


def duration(seconds):
    """'1h02m03s' or '2m03s'."""
    seconds = int(round(seconds))
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s'


def post_update(out, num_updates):
    """(loss, accuracy) after `num_updates` inner steps, or after the last reported one; for a learner
    without inner steps (T = 0) the query loss / accuracy."""
    steps = int(out.total_losses2.shape[0]) if out.total_losses2 is not None else 0
    if steps == 0:
        return out.total_loss1, out.total_accuracy1
    j = min(num_updates, steps) - 1
    return out.total_losses2[j], (out.total_accuracies2[j] if out.total_accuracies2 is not None else None)


def progress_line(itr, total, last_time, last_itr, now):
    """Prints `it N/total  s/it  ETA` (rate over the steps since last_itr); returns the new (last_time, last_itr)."""
    per_it = (now - last_time) / max(itr - last_itr, 1)
    print(f'[maml-tf2] it {itr}/{total}  {per_it:.4f} s/it  ETA {duration(per_it * (total - itr - 1))}', flush=True)
    return now, itr


def summary_tasks(model, batch):
    """The tasks of a meta-batch that the training summaries evaluate: all of them where the learner says so
    (MAML and its variants, as the original), else the first (learners whose evaluation adapts for many steps,
    or is cheap anyway)."""
    return batch if model.summarizes_every_task else [t[:1] for t in batch]


def summary_step(model, config):
    """The inner step whose query loss / accuracy the training prints show: the learner's `summary_updates`
    (MAML: --num_updates, the original's), else the last one reported."""
    return model.summary_updates(config) or 10 ** 9


class Action:
    """Periodic work of the training loop; every hook is optional."""

    def begin(self, itr, batch):
        """Before iteration `itr`'s step; `batch`: the meta-batch it trains on (None: a chunk already ran it)."""

    def end(self, itr, objective):
        """After the step; `objective`: what it returned (a float, or None)."""

    def close(self, itr):
        """After the last iteration `itr`."""

    def reads_before(self, itr):
        """Whether begin(itr) reads the weights (a chunk of steps must start at itr)."""
        return False

    def reads_after(self, itr):
        """Whether end(itr) reads the weights (a chunk of steps must end at itr)."""
        return False


def learner_variables(model):
    """Every variable of the learner's checkpoint (weights, statistics, optimizer slots), in the checkpoint's order."""
    import tensorflow as tf
    root = tf.train.Checkpoint(**model.checkpoint_items())   # the view holds it weakly
    return [v for v in tf.train.TrackableView(root).descendants() if isinstance(v, tf.Variable)]


class Evaluator:
    """The learner's `evaluate` on copies of its variables (`copy()`), run by a twin of the learner
    (`experiment.twin()`: the same learner with variables of its own), so that an evaluation can run while the
    steps change the weights. The summaries evaluate the weights from before a step after it, and the first
    evaluation of a run (tracing `evaluate` and compiling it: 2-3 times the step on Omniglot) runs in a background
    thread (`submit`) while the training goes on; every value is the one `model.evaluate` gives on those weights."""

    def __init__(self, experiment):
        self.model, self.twin = experiment.model, experiment.twin()
        self.variables = learner_variables(self.model)
        self.twin_variables = learner_variables(self.twin)
        if [(v.shape, v.dtype) for v in self.variables] != [(v.shape, v.dtype) for v in self.twin_variables]:
            raise RuntimeError(f'{type(self.model).__name__}: a second instance holds other variables; create every '
                               f'variable (optimizer slots too) in the constructor')

    def copy(self):
        """The values of the learner's variables now (a list of tensors)."""
        import tensorflow as tf
        return [tf.identity(v) for v in self.variables]

    def __call__(self, tasks, values=None):
        """The learner's MetaOutput for `tasks` on `values` (from `copy()`; None: the variables now)."""
        for v, value in zip(self.twin_variables, self.copy() if values is None else values):
            v.assign(value)
        return self.twin.evaluate(*tasks)

    def submit(self, jobs):
        """Starts [self(tasks, values) for tasks, values in jobs] in a background thread; returns `wait()`, which
        waits for them and returns their MetaOutputs (or raises what they raised). Nothing else may use the
        evaluator until then."""
        import threading
        result = {}

        def run():
            try:
                result['outs'] = [self(tasks, values) for tasks, values in jobs]
            except BaseException as e:   # re-raised by wait(), in the training's thread
                result['error'] = e
        thread = threading.Thread(target=run, name='maml-tf2 first evaluation', daemon=True)
        thread.start()

        def wait():
            thread.join()
            if 'error' in result:
                raise result['error']
            return result['outs']
        return wait


class Summaries(Action):
    """The original's summaries every `intervals.summary` iterations: the meta-batch's losses (and accuracies)
    before and after the inner steps, on the weights before the update (TensorBoard `metatrain_*`), and a
    validation meta-batch's (`metaval_*`); for a learner pre-training on mini-batches, its loss and a validation
    task's accuracy. Collects the values the original's prints average (`prelosses`, `postlosses`).

    The first evaluation traces and compiles `evaluate`: it runs in the background (`Evaluator.submit`) and its
    values are recorded at the next summary iteration, or at `close`, in the order the original wrote them."""

    def __init__(self, experiment, every, writer, val_batches):
        self.e, self.every, self.writer, self.val_batches = experiment, every, writer, val_batches
        self._evaluator = None
        self.classification = experiment.model.classification
        self.prelosses, self.postlosses, self.tasks, self.snapshot = [], [], None, None
        self.pending = None     # (itr, objective, wait, start) of the evaluation running in the background
        self.compile_s = None   # seconds the training waited for the first evaluation (tracing, compiling), once done

    @property
    def evaluator(self):
        """The Evaluator of the summaries and Validation (built at first use, in the training's thread)."""
        if self._evaluator is None:
            self._evaluator = Evaluator(self.e)
        return self._evaluator

    def reads_before(self, itr):
        return itr % self.every == 0

    def reads_after(self, itr):
        return self.classification and itr != 0 and itr % self.every == 0

    def begin(self, itr, batch):
        """The original fetched these summaries with the update, from the weights before it: they are copied here
        and evaluated in `end`, after the step, so that a first iteration compiles the step alone."""
        model = self.e.model
        self.tasks = self.snapshot = None
        if itr % self.every == 0:
            self.settle()
            if model.trains_on_tasks:
                self.tasks, self.snapshot = summary_tasks(model, batch), self.evaluator.copy()

    def end(self, itr, objective):
        if itr % self.every:
            return
        model = self.e.model
        if self.tasks is None:   # pre-training on mini-batches: its loss, then accuracy on a validation task
            jobs = [(summary_tasks(model, next(self.val_batches)), None)]
        else:   # the original's merge_all also ran the metaval tensors
            jobs = [(self.tasks, self.snapshot)]
            if self.writer and self.classification:
                jobs.append((summary_tasks(model, next(self.val_batches)), None))
        self.tasks = self.snapshot = None
        if self.compile_s is not None:
            self.record(itr, objective, [self.evaluator(*job) for job in jobs])
            return
        xla = 'and compiling (XLA) ' if self.e.run_config.xla else ''
        print(f'[maml-tf2] tracing {xla}the evaluation of the training summaries in the background; the training '
              f'goes on and iteration {itr}\'s summaries are written at the next ones ({itr + self.every})', flush=True)
        jobs = [(tasks, self.evaluator.copy() if values is None else values) for tasks, values in jobs]
        self.pending = (itr, objective, self.evaluator.submit(jobs), time.perf_counter())

    def settle(self):
        """Waits for the evaluation running in the background (if any) and records its values."""
        if self.pending is None:
            return
        itr, objective, wait, start = self.pending
        self.pending, waited = None, time.perf_counter()
        outs = wait()
        now = time.perf_counter()
        self.compile_s = now - waited
        print(f'[maml-tf2] the training summaries\' evaluation was traced{" and compiled" if self.e.run_config.xla else ""} '
              f'in the background in {now - start:.1f}s; the training waited {self.compile_s:.1f}s for it', flush=True)
        self.record(itr, objective, outs)

    def close(self, itr):
        self.settle()

    def abandon(self):
        """Waits for the evaluation running in the background, if any, without recording it: for a training that
        stops on an exception (a process that exits while TensorFlow compiles in another thread aborts)."""
        if self.pending is None:
            return
        wait, self.pending = self.pending[2], None
        print("[maml-tf2] stopping: waiting for the summaries' evaluation, compiling in the background, to end",
              flush=True)
        while True:
            try:
                wait()
                return
            except KeyboardInterrupt:   # a second Ctrl-C: the wait goes on (exiting now would abort the process)
                continue
            except Exception:   # the training's own exception is the one to report
                return

    def record(self, itr, objective, outs):
        """Collects and writes iteration `itr`'s summaries from the evaluations' MetaOutputs (`outs`, as `end` asked
        for them)."""
        w = self.writer
        if not self.e.model.trains_on_tasks:
            val, = outs
            self.prelosses.append(float(objective))
            self.postlosses.append(val.total_accuracy1.numpy())
            if w:
                write_scalars(w, 'metatrain_', {'Pre-update loss': objective}, itr)
                write_scalars(w, 'metaval_', summary_values(val, True), itr)
            return
        before = outs[0]
        post_loss, post_acc = post_update(before, summary_step(self.e.model, self.e.run_config))
        result = [before.total_loss1, post_loss]
        if self.classification:
            result += [before.total_accuracy1, post_acc]
        self.prelosses.append(result[-2].numpy())
        self.postlosses.append(result[-1].numpy())
        if w:
            write_scalars(w, 'metatrain_', summary_values(before, self.classification), itr)
            if len(outs) > 1:
                write_scalars(w, 'metaval_', summary_values(outs[1], True), itr)

    def take_means(self):
        """(mean pre, mean post) of the values collected since the last call, or None; clears them."""
        if not self.prelosses:
            return None
        means = (np.mean(self.prelosses), np.mean(self.postlosses))
        self.prelosses, self.postlosses = [], []
        return means


class FirstIteration(Action):
    """The first iteration of each phase apart (it traces and compiles the step): says so before it, with how long
    that took last time in this folder (COMPILE_RECORD), so that a long first iteration is not mistaken for a hang,
    and how long it took after it, before anything else at that iteration (the training summaries' evaluation
    compiles after this line). `compile_s` and `n_first` sum them up for Prints' closing line."""

    def __init__(self, experiment):
        self.e, self.t0, self.compile_s, self.n_first = experiment, time.perf_counter(), 0.0, 0

    def _first(self, itr):
        return itr in (self.e.start_itr, self.e.run_config.pretrain_iterations)   # traces (and compiles) the step

    def reads_after(self, itr):
        return self._first(itr)

    def begin(self, itr, batch):
        if itr != self.e.start_itr:   # the run's first iteration counts from the loop's start (its first batch)
            self.t0 = time.perf_counter()
        if self._first(itr):
            rc, phase = self.e.run_config, self._phase(itr)
            last = read_compile_seconds(self.e.exp_dir).get(phase)
            print(f'[maml-tf2] iteration {itr}: tracing {"and compiling (XLA) " if rc.xla else ""}the '
                  f'{phase.split(":")[0]} step' + (f'; that took {last:.0f}s last time' if last else '') + ' ...',
                  flush=True)

    def _phase(self, itr):
        """'pretraining' or 'meta-training', with what decides the compiled program (XLA or not)."""
        rc = self.e.run_config
        return ('pretraining' if itr < rc.pretrain_iterations else 'meta-training') + (':xla' if rc.xla else ':graph')

    def end(self, itr, objective):
        if not self._first(itr):
            return
        rc, seconds = self.e.run_config, time.perf_counter() - self.t0
        self.compile_s, self.n_first = self.compile_s + seconds, self.n_first + 1
        print(f'[maml-tf2] first {"pretraining" if itr < rc.pretrain_iterations else "meta-training"} iteration '
              f'({itr}): {seconds:.1f}s (tracing{" and XLA compile" if rc.xla else ""}); s/it and ETA count the '
              f'steps after it', flush=True)
        from infra import distribute as distribute_lib
        if distribute_lib.is_chief(self.e.config):   # the chief's folder
            write_compile_seconds(self.e.exp_dir, self._phase(itr), seconds)


class Prints(Action):
    """What train() prints as it goes: the original's `Iteration N: <pre>, <post>` every `intervals.print`
    iterations, and `it N/total  s/it  ETA` with it and at least every PROGRESS_SECONDS, counting the iterations
    after each phase's first (`first`, the FirstIteration action); `close` prints the closing summary."""

    def __init__(self, experiment, every, total, summaries, checkpoints, writer, first):
        self.e, self.every, self.total, self.first = experiment, every, total, first
        self.summaries, self.checkpoints, self.writer = summaries, checkpoints, writer
        self.start = self.last_time = self.last_print = time.perf_counter()
        self.last_itr, self.last_means, self.waited = experiment.start_itr, None, False

    def end(self, itr, objective):
        rc, first = self.e.run_config, self.first._first(itr)
        pretraining, printing = itr < rc.pretrain_iterations, itr != 0 and itr % self.every == 0
        if printing and self.summaries:
            self.summaries.settle()   # a summary still evaluated in the background belongs in the means
        if not self.waited and self.summaries and self.summaries.compile_s is not None:
            self.waited, self.last_time = True, self.last_time + self.summaries.compile_s   # not a step's time
        now = time.perf_counter()
        if printing:
            print_str = ('Pretrain Iteration ' + str(itr) if pretraining else
                         'Iteration ' + str(itr - rc.pretrain_iterations))
            self.last_means = self.summaries.take_means()
            print(print_str + ': ' + str(self.last_means[0]) + ', ' + str(self.last_means[1]))
            if not first:
                self.last_time, self.last_itr = progress_line(itr, self.total, self.last_time, self.last_itr, now)
            self.last_print = now
        elif not first and now - self.last_print >= PROGRESS_SECONDS:
            progress_line(itr, self.total, self.last_time, self.last_itr, now)
            self.last_print = now
        if first:
            self.last_time, self.last_itr, self.last_print = now, itr, now

    def close(self, itr):
        from infra import distribute as distribute_lib
        e, model = self.e, self.e.model
        done = itr + 1 - e.start_itr
        wall = time.perf_counter() - self.start
        compile_s, n_first = self.first.compile_s, self.first.n_first
        summary_s = self.summaries.compile_s if self.summaries and self.summaries.compile_s is not None else 0.0
        steady = (f', then {(wall - compile_s - summary_s) / (done - n_first):.4f} s/it' if done > n_first
                  else '')
        print(f'[maml-tf2] trained iterations {e.start_itr}..{itr} of {self.total} in {duration(wall)} (first '
              f'iteration of each phase {compile_s:.1f}s' + (f', waiting for the first summary evaluation '
                                                             f'{summary_s:.1f}s' if summary_s else '') + f'{steady})')
        kept = ', '.join(os.path.basename(p) for p in e.checkpointer.kept)
        chief = distribute_lib.is_chief(e.config)
        if chief:   # a multi_worker worker's own checkpoint is a temporary copy
            print(f'[maml-tf2] checkpoint {self.checkpoints.last} (kept: {kept}; list in '
                  f'{os.path.join(e.exp_dir, CHECKPOINT_STATE)})'
                  + (f'; TensorBoard summaries in {e.exp_dir}' if self.writer else ''))
        last_means = self.summaries.take_means() or self.last_means
        if last_means and not model.trains_on_tasks:
            print(f'[maml-tf2] last training summaries: pre-training loss {last_means[0]:.4f}, validation task '
                  f'accuracy {last_means[1]:.4f}')
        elif last_means and not model.adapts:
            kind = 'accuracy' if model.classification else 'loss'
            print(f'[maml-tf2] last training summaries: query {kind} {last_means[1]:.4f}')
        elif last_means:
            kind = 'accuracy' if model.classification else 'loss'
            print(f'[maml-tf2] last training summaries: pre-update {kind} {last_means[0]:.4f}, post-update {kind} '
                  f'{last_means[1]:.4f}')
        if chief:
            print('[maml-tf2] to test it: the same flags and --train=False (--test_set=True for the test split)',
                  flush=True)


class Checkpoints(Action):
    """`model<itr>` every `intervals.save` iterations and after the last one (never a non-finite weight:
    TrainingDiverged instead); `last`: the prefix saved (or restored) last."""

    def __init__(self, experiment, every):
        self.e, self.every = experiment, every
        kept = experiment.checkpointer.kept
        self.last = kept[-1] if kept else experiment.restored_from

    def reads_after(self, itr):
        return itr != 0 and itr % self.every == 0

    def end(self, itr, objective):
        if self.reads_after(itr):
            self.save(itr)

    def close(self, itr):
        if not self.reads_after(itr):   # else just saved
            self.save(itr)

    def save(self, itr):
        bad = self.e.checkpointer.nonfinite()
        if bad:
            diverged(self.e, self.last, itr, f'{bad[0]} holds nan/inf after the update'
                     + (f' ({len(bad)} variables)' if len(bad) > 1 else ''))
        self.last = self.e.checkpointer.save(itr, itr + 1)


class Validation(Action):
    """The original's `Validation results: <pre>, <post>` line every `intervals.test_print` iterations, on a
    validation meta-batch (classification only: the sinusoid's data is infinite), evaluated by the summaries'
    Evaluator (the `evaluate` they compiled)."""

    def __init__(self, experiment, every, val_batches, summaries):
        self.e, self.every, self.val_batches, self.summaries = experiment, every, val_batches, summaries

    def reads_after(self, itr):
        return self.val_batches is not None and itr != 0 and itr % self.every == 0

    def end(self, itr, objective):
        if self.reads_after(itr):
            model = self.e.model
            self.summaries.settle()
            out = self.summaries.evaluator(summary_tasks(model, next(self.val_batches)))
            print('Validation results: ' + str(out.total_accuracy1.numpy()) + ', '
                  + str(post_update(out, summary_step(model, self.e.run_config))[1].numpy()), flush=True)


class Steps:
    """The learner's steps, one iteration at a time: `batch(itr)` draws what iteration `itr` trains on, `run(itr)`
    runs it and returns its objective (TrainingDiverged on nan/inf). Pre-training (--pretrain_iterations) and
    the learners that pre-train on mini-batches run one step per call; with --steps_per_execution > 1 a
    learner with `metatrain_steps` runs a chunk of meta-iterations per compiled call, ended where an action
    reads the weights."""

    def __init__(self, experiment, total, batches, actions, checkpoints):
        self.e, self.total, self.batches, self.actions, self.checkpoints = experiment, total, batches, actions, checkpoints
        rc, model = experiment.run_config, experiment.model
        self.chunked = rc.steps_per_execution > 1 and model.trains_on_tasks and hasattr(model, 'metatrain_steps')
        self.pending, self.chunk = [], None   # the objectives of iterations a chunk already ran

    def chunk_size(self, itr):
        """How many meta-iterations from `itr` on one compiled call runs (at most --steps_per_execution)."""
        size, limit = 1, self.e.run_config.steps_per_execution
        while (size < limit and itr + size < self.total and not any(a.reads_before(itr + size) for a in self.actions)
               and not any(a.reads_after(itr + size - 1) for a in self.actions)):
            size += 1
        return size

    def batch(self, itr):
        if self.pending:
            self.chunk = None
            return None
        pretraining = itr < self.e.run_config.pretrain_iterations
        size = 1 if pretraining or not self.chunked else self.chunk_size(itr)
        self.chunk = [next(self.batches) for _ in range(size)]
        return self.chunk[0]

    def run(self, itr):
        model, rc = self.e.model, self.e.run_config
        pretraining = itr < rc.pretrain_iterations
        if self.chunk is None:
            objective = self.pending.pop(0)
        elif not model.trains_on_tasks:
            objective = model.pretrain_step_on_batch(*self.chunk[0])
        elif pretraining or not self.chunked:
            objective = (model.pretrain_step if pretraining else model.metatrain_step)(*self.chunk[0])
        else:
            from infra import loop
            size = len(self.chunk)
            objective, *self.pending = model.metatrain_steps(
                *loop.stack_batches(self.chunk, rc.steps_per_execution), size).numpy()[:size]
        if objective is not None and not np.isfinite(value := float(objective)):
            diverged(self.e, self.checkpoints.last, itr,
                     f'the {"pretraining" if pretraining else "meta-training"} objective is {value}')
        return objective


def diverged(e, last, itr, what):
    """Raises TrainingDiverged: what became non-finite at iteration `itr`, and how to go on from `last` (the last
    checkpoint saved or restored, or None)."""
    where = (f'the last good checkpoint is {last} (nothing after it was saved); to go on from it, run again with '
             f'the same flags and e.g. a lower --meta_lr, or test it with --train=False') if last else \
        'no checkpoint was saved; train again with e.g. a lower --meta_lr or --update_lr'
    if e.config.precision == 'float16':
        where += (f' (with --precision=float16 the likely cause is a float16 overflow of the scaled gradients: lower '
                  f'--loss_scale, now {e.config.loss_scale:g}, or use --precision=bfloat16)')
    raise TrainingDiverged(f'training diverged at iteration {itr}: {what}; {where}')
