"""Checkpoints: a resumed run loses nothing (weights, Adam state, data RNG), files are written atomically."""
import os

import numpy as np
import pytest
import tensorflow as tf

import main
from infra import checks
from infra import checkpoints
from config import Config, exp_string

SAVE_EVERY_10 = main.Intervals(summary=5, save=10, print=10, test_print=100)


def _config(tmp_path, name='run', **changes):
    """Sinusoid with batch norm (so norm weights are checkpointed too), small and seeded."""
    base = dict(datasource='sinusoid', metatrain_iterations=30, meta_batch_size=3, update_batch_size=4,
                update_lr=0.01, num_updates=2, seed=1, xla=False, logdir=str(tmp_path / name))
    return Config(**{**base, **changes})


def _state(experiment):
    """Everything a run's future depends on: variables, both Adams, the data generator's RNG."""
    m = experiment.model
    state = {'w/' + k: v.numpy().copy() for k, v in m.weights.items()}
    state.update({'n/' + k: v.numpy().copy() for k, v in m.norm_weights.items()})
    for opt in (m.metatrain_optimizer, m.pretrain_optimizer):
        state.update({f'{opt.name}/m/{k}': v.numpy().copy() for k, v in opt.m.items()})
        state.update({f'{opt.name}/v/{k}': v.numpy().copy() for k, v in opt.v.items()})
        state[opt.name + '/beta1_power'] = opt.beta1_power.numpy()
        state[opt.name + '/beta2_power'] = opt.beta2_power.numpy()
    state['data'] = experiment.data_generator.get_state()
    return state


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if k == 'data':
            assert a[k] == b[k]
        else:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)   # bit for bit


class Interrupt(Exception):
    pass


def _snapshots_at(*itrs):
    """An after_step hook recording _state after the given iterations; the dict fills as they pass."""
    taken = {}

    def hook(experiment):
        def after_step(itr):
            if itr in itrs:
                taken[itr] = _state(experiment)
        return after_step
    return taken, hook


def test_interrupted_and_resumed_run_equals_uninterrupted_bit_for_bit(tmp_path, capsys):
    # pretraining then meta-training, so both Adams carry state across the interruption
    config = _config(tmp_path, 'whole', pretrain_iterations=12, metatrain_iterations=18)
    whole = main.prepare(config)
    assert main.train(whole, SAVE_EVERY_10) == 30
    expected = _state(whole)

    config = config.replace(logdir=str(tmp_path / 'cut'))
    first = main.prepare(config)
    taken, hook = _snapshots_at(20)

    def crash_after_24(itr):
        hook(first)(itr)
        if itr == 24:
            raise Interrupt
    with pytest.raises(Interrupt):
        main.train(first, SAVE_EVERY_10, after_step=crash_after_24)

    resumed = main.prepare(config)                      # --resume (default): the latest, model20
    assert resumed.restored_from == os.path.join(resumed.exp_dir, 'model20')
    assert resumed.start_itr == 21                      # iteration 20 is not redone
    _assert_same(_state(resumed), taken[20])            # weights, Adams, data RNG as they were saved
    out = capsys.readouterr().out
    assert 'Restoring model weights from ' + os.path.join(resumed.exp_dir, 'model20') in out
    assert main.train(resumed, SAVE_EVERY_10) == 30
    _assert_same(_state(resumed), expected)


def test_resume_false_starts_over(tmp_path):
    config = _config(tmp_path, metatrain_iterations=11)
    main.train(main.prepare(config), SAVE_EVERY_10)
    again = main.prepare(config.replace(resume=False))
    assert again.start_itr == 0 and again.restored_from is None


def test_test_iter_loads_the_requested_checkpoint(tmp_path, capsys):
    config = _config(tmp_path)
    e = main.prepare(config)
    taken, hook = _snapshots_at(10, 29)
    main.train(e, SAVE_EVERY_10, after_step=hook(e))
    exp_dir = e.exp_dir

    loaded = main.prepare(config.replace(train=False, test_iter=10))
    assert loaded.restored_from == os.path.join(exp_dir, 'model10')
    assert loaded.start_itr == 11
    got, want = _state(loaded), taken[10]
    got.pop('data'), want.pop('data')                   # testing does not restore the training stream
    _assert_same(got, want)

    latest = main.prepare(config.replace(train=False))
    assert latest.restored_from == os.path.join(exp_dir, 'model29') == tf.train.latest_checkpoint(exp_dir)
    got, want = _state(latest), taken[29]
    got.pop('data'), want.pop('data')
    _assert_same(got, want)

    # training with --test_iter resumes from that checkpoint, as the original did
    assert main.prepare(config.replace(test_iter=20)).start_itr == 21
    capsys.readouterr()


def test_checkpoint_files_and_retention(tmp_path):
    config = _config(tmp_path, metatrain_iterations=25)
    e = main.prepare(config)
    main.train(e, main.Intervals(summary=100, save=2, print=100, test_print=100))
    kept = [f'model{i}' for i in (6, 8, 10, 12, 14, 16, 18, 20, 22, 24)]    # the last 10 saves
    files = sorted(os.listdir(e.exp_dir))
    assert files == sorted(['.train.lock', '.first_iteration.json', 'checkpoint'] + [k + '.index' for k in kept]
                           + [k + '.data-00000-of-00001' for k in kept] + [f for f in files if f.startswith('events')])
    with open(os.path.join(e.exp_dir, 'checkpoint')) as f:
        assert f.read().splitlines() == (['model_checkpoint_path: "model24"']
                                         + [f'all_model_checkpoint_paths: "{k}"' for k in kept])
    state = tf.train.get_checkpoint_state(e.exp_dir)
    assert state.model_checkpoint_path == os.path.join(e.exp_dir, 'model24')
    assert list(state.all_model_checkpoint_paths) == [os.path.join(e.exp_dir, k) for k in kept]
    names = dict(tf.train.list_variables(os.path.join(e.exp_dir, 'model24')))
    for key in ('iteration', 'data_state', 'metatrain_optimizer/beta1_power', 'pretrain_optimizer/beta2_power',
                'weights/w1', 'metatrain_optimizer/m/w1', 'norm_weights/0.Sbeta'):
        assert key + '/.ATTRIBUTES/VARIABLE_VALUE' in names, key


def test_a_crash_while_saving_leaves_the_latest_checkpoint_usable(tmp_path, monkeypatch):
    config = _config(tmp_path, metatrain_iterations=11)
    e = main.prepare(config)
    main.train(e, SAVE_EVERY_10)
    latest = tf.train.latest_checkpoint(e.exp_dir)
    assert latest.endswith('model10')

    def die(src, dst):
        raise Interrupt   # killed between writing the files and moving them into place
    monkeypatch.setattr(os, 'replace', die)
    with pytest.raises(Interrupt):
        e.checkpointer.save(11, 12)
    monkeypatch.undo()
    assert tf.train.latest_checkpoint(e.exp_dir) == latest == main.latest_checkpoint(e.exp_dir)
    assert not os.path.exists(os.path.join(e.exp_dir, 'model11.index'))
    assert main.prepare(config).start_itr == 11
    e.checkpointer.save(11, 12)                         # the next save clears what the crash left
    assert sorted(n for n in os.listdir(e.exp_dir) if 'model11' in n) == [
        'model11.data-00000-of-00001', 'model11.index']


def test_damaged_checkpoint_is_a_clean_error(tmp_path):
    config = _config(tmp_path, metatrain_iterations=2)
    e = main.prepare(config)
    main.train(e, SAVE_EVERY_10)
    with open(os.path.join(e.exp_dir, 'model1.data-00000-of-00001'), 'wb') as f:
        f.write(b'garbage')
    with pytest.raises(main.UsageError, match=r'^cannot restore checkpoint .*model1 \(.*\); it is damaged'):
        main.prepare(config.replace(train=False))


# ---------------------------------------------------------------------------- what a checkpoint was trained with
def _files(directory):
    return {n: os.path.getmtime(os.path.join(directory, n)) for n in os.listdir(directory)}


def test_pretrained_baseline_never_resumes_or_tests_the_maml_run(tmp_path):
    """The README's sinusoid commands: MAML, then the pretrained baseline with the same --logdir (same name)."""
    maml = _config(tmp_path, metatrain_iterations=3, norm='None')
    baseline = maml.replace(pretrain_iterations=3, metatrain_iterations=0)
    e = main.prepare(maml)
    main.train(e, SAVE_EVERY_10)
    assert exp_string(baseline) == exp_string(maml)          # the original's name collision
    before = _files(e.exp_dir)
    with pytest.raises(main.UsageError) as err:
        main.prepare(baseline)
    assert str(err.value) == (
        f'{e.exp_dir}/model2 was trained with training=metatrain, this run has training=pretrain (resuming it would '
        f'mix the two; the experiment name does not tell them apart); give this run a --logdir of its own, '
        f'e.g. --logdir={tmp_path}/run/pretrain')
    with pytest.raises(main.UsageError, match=r'--resume=False would overwrite its checkpoints; .*--logdir of its own'):
        main.prepare(baseline.replace(resume=False))
    # testing with the baseline's flags (the README's test command: its training flags and --train=False)
    with pytest.raises(main.UsageError, match=r'model2 was trained with training=metatrain, but these flags say '
                                              r'training=pretrain; pass the flags it was trained with'):
        main.prepare(baseline.replace(train=False), explicit=('pretrain_iterations', 'metatrain_iterations'))
    # flags left out (here: the iteration counts, which testing does not need) mean "as the checkpoint"
    assert main.prepare(baseline.replace(train=False)).start_itr == 3
    assert _files(e.exp_dir) == before                                 # nothing deleted or overwritten
    assert main.prepare(maml.replace(train=False)).start_itr == 3      # MAML's own flags still test it
    again = main.prepare(maml.replace(resume=False))                   # and restart it (same regime)
    assert again.start_itr == 0
    own = main.prepare(baseline.replace(logdir=str(tmp_path / 'run' / 'pretrain')))
    assert own.start_itr == 0 and main.train(own, SAVE_EVERY_10) == 3


def test_regime_names_method_architecture_and_datasource():
    c = Config(datasource='sinusoid', norm='None')
    assert main.regime(c) == {'method': 'maml', 'protocol': 'maml', 'baseline': None, 'datasource': 'sinusoid',
                              'num_classes': 5, 'conv': None, 'norm': 'None', 'num_filters': 64, 'max_pool': False,
                              'training': 'metatrain'}
    assert main.regime(c.replace(baseline='oracle'))['training'] == 'pretrain'      # oracle only pretrains
    assert main.regime(c.replace(pretrain_iterations=5))['training'] == 'pretrain+metatrain'
    omniglot = main.regime(c.replace(datasource='omniglot', conv=False))
    assert checkpoints.regime_differences(main.regime(c), omniglot) == [('datasource', 'sinusoid', 'omniglot'),
                                                                 ('conv', None, False)]


def test_a_checkpoint_without_a_record_still_loads(tmp_path, capsys):
    """Checkpoints written before the record existed: no `record` variable; they load unchecked."""
    config = _config(tmp_path, metatrain_iterations=3)
    e = main.prepare(config)
    items = e.model.checkpoint_items()
    old = tf.train.Checkpoint(**items, iteration=tf.Variable(3, dtype=tf.int64), data_state=tf.Variable(''))
    os.makedirs(e.exp_dir)
    old.write(os.path.join(e.exp_dir, 'model2'))
    with open(os.path.join(e.exp_dir, 'checkpoint'), 'w') as f:
        f.write('model_checkpoint_path: "model2"\n')
    assert checkpoints.read_record(os.path.join(e.exp_dir, 'model2')) is None
    loaded = main.prepare(config.replace(train=False, pretrain_iterations=7, metatrain_iterations=0))
    assert loaded.start_itr == 3
    assert 'model2 has no record of the flags it was trained with' in capsys.readouterr().out
    resumed = main.prepare(config.replace(metatrain_iterations=5))
    assert resumed.start_itr == 3 and main.train(resumed, SAVE_EVERY_10) == 5
    record = checkpoints.read_record(os.path.join(e.exp_dir, 'model4'))      # saves from now on carry one
    assert record['regime']['training'] == 'metatrain' and record['config']['metatrain_iterations'] == 5


# ---------------------------------------------------------------------------- failures that must not lose work
def _poison(model):
    """Puts a nan into the first weight of the model."""
    var = next(iter(model.weights.values()))
    var.assign(tf.fill(var.shape, np.float32('nan')))


def test_a_nan_objective_stops_training_naming_the_last_good_checkpoint(tmp_path):
    config = _config(tmp_path, metatrain_iterations=30)
    e = main.prepare(config)

    def poison_after_12(itr):
        if itr == 12:
            _poison(e.model)
    with pytest.raises(checks.TrainingDiverged) as err:
        main.train(e, SAVE_EVERY_10, after_step=poison_after_12)
    assert str(err.value) == (
        f'training diverged at iteration 13: the meta-training objective is nan; the last good checkpoint is '
        f'{e.exp_dir}/model10 (nothing after it was saved); to go on from it, run again with the same flags and '
        f'e.g. a lower --meta_lr, or test it with --train=False')
    assert err.value.status == 3
    assert main.latest_checkpoint(e.exp_dir) == os.path.join(e.exp_dir, 'model10')
    assert not [n for n in os.listdir(e.exp_dir) if n.startswith('model') and not n.startswith('model10.')]
    assert main.prepare(config).start_itr == 11             # the lock went with the failed run


def test_weights_that_became_nan_are_never_saved(tmp_path, monkeypatch):
    """The objective is measured before the update: an update to nan with a finite objective is caught at the save."""
    e = main.prepare(_config(tmp_path, metatrain_iterations=30))
    step, calls = e.model.metatrain_step, []

    def step_then_poison(*batch):
        loss = step(*batch)
        calls.append(1)
        if len(calls) == 21:                                  # iteration 20, a save iteration
            _poison(e.model)
        return loss
    monkeypatch.setattr(e.model, 'metatrain_step', step_then_poison)
    with pytest.raises(checks.TrainingDiverged, match=r'^training diverged at iteration 20: model/w1 holds nan/inf '
                                                    r'after the update; the last good checkpoint is .*/model10 '):
        main.train(e, SAVE_EVERY_10)
    assert main.latest_checkpoint(e.exp_dir).endswith('model10')
    assert not os.path.exists(os.path.join(e.exp_dir, 'model20.index'))


def test_a_second_process_cannot_train_into_the_same_folder(tmp_path):
    import subprocess
    import sys
    config = _config(tmp_path, metatrain_iterations=3)
    e = main.prepare(config)
    os.makedirs(e.exp_dir)
    holder = checkpoints.RunLock(e.exp_dir).acquire()                 # another run training there
    with pytest.raises(main.UsageError, match=rf'^pid {os.getpid()} on .* is training into {e.exp_dir}, so this run '
                                              r'would overwrite its checkpoints; wait for it to end'):
        main.train(e)
    assert not [n for n in os.listdir(e.exp_dir) if n.startswith('model')]
    holder.release()
    # a process that dies holding the lock leaves it free
    lock = os.path.join(e.exp_dir, checkpoints.LOCK_FILE)
    code = f'import fcntl, os; fd = os.open({lock!r}, os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX); os._exit(9)'
    assert subprocess.run([sys.executable, '-c', code], timeout=30).returncode == 9
    assert os.path.exists(lock)
    checkpoints.RunLock(e.exp_dir).acquire().release()


def test_a_full_disk_while_saving_leaves_the_previous_checkpoint_usable(tmp_path, monkeypatch):
    import errno
    config = _config(tmp_path, metatrain_iterations=25)
    e = main.prepare(config)
    write = tf.train.Checkpoint.write

    def full_disk(self, prefix, options=None):
        if os.path.basename(prefix).endswith('_model20'):
            with open(prefix + '.data-00000-of-00001', 'wb') as f:   # half-written
                f.write(b'x' * 100)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(self, prefix, options)
    monkeypatch.setattr(tf.train.Checkpoint, 'write', full_disk)
    with pytest.raises(main.UsageError) as err:
        main.train(e, SAVE_EVERY_10)
    assert str(err.value) == (
        f'cannot save checkpoint {e.exp_dir}/model20 (No space left on device); {e.exp_dir}/model10 is still the '
        f'latest checkpoint, intact; free space (or fix the folder) and run again with the same flags to resume from it')
    monkeypatch.undo()
    assert sorted(n for n in os.listdir(e.exp_dir) if 'model' in n) == ['model10.data-00000-of-00001',
                                                                       'model10.index']
    assert main.prepare(config).start_itr == 11
