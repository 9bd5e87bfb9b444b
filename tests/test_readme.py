"""The README's commands can never drift from the code.

Every `python ...` command of README.md and of the docs/ pages listed in DOCS (fenced shell blocks,
`&&` chains, continuation lines, and inline `python ...` code spans) is checked by a dry run:

* `python main.py FLAGS`: the flags are parsed on a fresh `absl.flags.FlagValues` with
  `main.define_flags`, turned into a Config by `main.config_from_flags` and checked by
  `main.check_config` (what `main.prepare` does first). That builds the config and stops: no
  TensorFlow, no data, nothing written. An unknown flag, a value of the wrong type or one
  check_config rejects fails the test.
* `python scripts/X.py ARGS`: the script's own argument parser, `X.parse_args(argv)` where the script
  has one, else its `main(argv)` stopped right after `ArgumentParser.parse_args`. Paths in the docs
  are placeholders (DIR, logs/...), so folder and file existence checks answer True meanwhile.
  An unknown option, a bad value or an unknown experiment name fails the test.

`python -m ...` (venv, pip, pytest) is left out; the test command is checked against .ci/run.
"""
import argparse
import contextlib
import importlib
import io
import os
import re
import shlex
import sys

import pytest
from absl import flags

import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, 'scripts')
# The Markdown files whose commands are checked (docs/DATA.md, SPEED.md, RESULTS.md are generated
# or describe measurements; add a page here once its commands are runnable as written).
DOCS = ('README.md', 'docs/USAGE.md', 'docs/REPRODUCE.md', 'docs/PARITY.md', 'docs/CHECKPOINTS.md', 'docs/SCALING.md',
        'docs/ARCHITECTURE.md', 'docs/METHODS.md', 'weights/README.md')
PYTHON = re.compile(r'(.*/)?python(3(\.\d+)?)?$')
OPERATOR = re.compile(r'[;&|<>()]+$')
HELP = ('--help', '-h', '--helpshort', '--helpfull')


# ------------------------------------------------------------------------------------ extraction
def _shell_lines(text):
    """(line number, logical line) of every fenced non-Python code block, continuation lines joined."""
    out, fence, start, buf = [], None, 0, ''
    for no, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith('```'):
            fence = None if fence is not None else stripped[3:].strip().lower()
            continue
        if fence is None or fence in ('python', 'py', 'json', 'text', 'csv'):
            continue
        if not buf:
            start = no
        if line.rstrip().endswith('\\'):
            buf += line.rstrip()[:-1] + ' '
            continue
        out.append((start, buf + line))
        buf = ''
    return out


def _inline_spans(text):
    """(line number, code) of the inline `python X.py ...` spans outside fenced blocks."""
    out, in_fence = [], False
    for no, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith('```'):
            in_fence = not in_fence
            continue
        if not in_fence:
            out += [(no, m.group(1)) for m in re.finditer(r'`(python3? [\w./-]+\.py\b[^`]*)`', line)]
    return out


def python_commands(text):
    """[(line number, argv after the interpreter)] of every `python ...` command in Markdown `text`.

    A shell line is split at `&&`, `;`, `|`, redirections and the like; in each piece the first
    `python`/`python3`/`python3.N` word starts a command (so `nice -n 5 python ...` and
    `for ...; do python ...` count). Comments (`# ...`) are dropped.
    """
    found = []
    for no, line in _shell_lines(text) + _inline_spans(text):
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        tokens = list(lex)
        pieces, piece = [], []
        for token in tokens:
            if OPERATOR.match(token):
                pieces.append(piece)
                piece = []
            else:
                piece.append(token)
        pieces.append(piece)
        for piece in pieces:
            at = next((i for i, t in enumerate(piece) if PYTHON.match(t)), None)
            if at is not None and at + 1 < len(piece):
                found.append((no, piece[at + 1:]))
    return sorted(found)


# ------------------------------------------------------------------------------------ dry runs
class CommandError(Exception):
    """A documented command that the code would reject; the message says why."""


def dry_run_main(args):
    """Parses main.py's flags as main.py does and checks the config; returns the Config.

    Raises CommandError for an unknown flag, a bad value, a positional argument or a config that
    main.check_config rejects.
    """
    if any(a in HELP for a in args):
        return None
    values = flags.FlagValues()
    main.define_flags(values)
    try:
        rest = values(['main.py', *args])
    except flags.Error as e:
        raise CommandError(f'main.py {" ".join(args)}: {e}') from None
    if rest[1:]:
        raise CommandError(f'main.py: unexpected argument {rest[1]!r}')
    config = main.config_from_flags(values)
    try:
        main.check_config(config, main.explicit_flags(values))
    except main.UsageError as e:
        raise CommandError(f'main.py {" ".join(args)}: {e}') from None
    return config


class _Parsed(Exception):
    def __init__(self, namespace):
        super().__init__()
        self.namespace = namespace


@contextlib.contextmanager
def _paths_exist():
    """Existence checks answer True: the docs' paths (DIR, logs/...) are placeholders."""
    saved = os.path.isdir, os.path.isfile
    os.path.isdir = os.path.isfile = lambda path: True
    try:
        yield
    finally:
        os.path.isdir, os.path.isfile = saved


def _script(name):
    if SCRIPTS not in sys.path:
        sys.path.insert(0, SCRIPTS)
    return importlib.import_module(name)


def dry_run_script(path, args):
    """Runs the argument parser of scripts/<name>.py on `args`; returns the parsed namespace.

    Raises CommandError when the parser rejects them (exit status != 0, the script's one-line error).
    """
    rel = os.path.relpath(os.path.join(REPO, path), REPO)
    if os.path.dirname(rel) != 'scripts' or not rel.endswith('.py') or not os.path.isfile(os.path.join(REPO, rel)):
        raise CommandError(f'python {path}: not main.py nor a script in scripts/')
    if any(a in HELP for a in args):
        return None
    module = _script(os.path.basename(rel)[:-3])
    err = io.StringIO()
    original_parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, argv=None, namespace=None):
        raise _Parsed(original_parse(self, argv, namespace))
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), _paths_exist():
            if hasattr(module, 'parse_args'):
                return module.parse_args(list(args))
            argparse.ArgumentParser.parse_args = parse_then_stop
            try:
                module.main(list(args))
            finally:
                argparse.ArgumentParser.parse_args = original_parse
    except _Parsed as parsed:
        return parsed.namespace
    except SystemExit as e:
        if e.code not in (0, None):
            raise CommandError(f'python {path} {" ".join(args)}: {err.getvalue().strip()}') from None
        return None
    raise CommandError(f'python {path}: main() returned without parsing its arguments')


def dry_run(argv):
    """Dry run of one documented command (argv after `python`); returns what its parser built."""
    if argv[0] == '-m':
        return None
    if argv[0] == 'main.py':
        return dry_run_main(argv[1:])
    return dry_run_script(argv[0], argv[1:])


def _doc_commands():
    cases = []
    for doc in DOCS:
        path = os.path.join(REPO, doc)
        if doc == 'README.md' or os.path.exists(path):
            with open(path) as f:
                cases += [pytest.param(argv, id=f'{doc}:{no}') for no, argv in python_commands(f.read())]
    return cases


def _read(path):
    with open(os.path.join(REPO, path)) as f:
        return f.read()


# ------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize('argv', _doc_commands())
def test_documented_command_parses(argv):
    dry_run(argv)


def test_readme_has_the_commands_people_come_for():
    commands = [argv for _, argv in python_commands(_read('README.md'))]
    scripts = {argv[0] for argv in commands}
    assert {'main.py', 'scripts/reproduce.py', 'scripts/report.py', 'scripts/plots.py'} <= scripts
    assert any(a == '--train=False' for argv in commands if argv[0] == 'main.py' for a in argv)
    assert len(commands) >= 15


def test_readme_sinusoid_baselines_have_their_own_logdir():
    """The original's usage notes ran the baselines into the MAML run's --logdir (same experiment
    name, so the baseline resumed the MAML checkpoint); the README gives each run its own."""
    configs = [dry_run_main(argv[1:]) for _, argv in python_commands(_read('README.md')) if argv[0] == 'main.py']
    train = {}
    for c in configs:
        if c is not None and c.train and c.datasource == 'sinusoid':
            train.setdefault((c.logdir.rstrip('/'), c.update_batch_size, c.baseline, c.pretrain_iterations > 0),
                             c)
    by_dir = {}
    for logdir, k, baseline, pretrain in train:
        by_dir.setdefault((logdir, k), set()).add((baseline, pretrain))
    assert by_dir and all(len(kinds) == 1 for kinds in by_dir.values()), by_dir


def test_readme_lists_every_method():
    """The "Compare methods" table has a row for every learner of config.METHODS, and no other."""
    import config
    readme = _read('README.md')
    table = readme[readme.index('<!-- Learners:'):readme.index('<!-- end of the learner table -->')]
    rows = [line.split('|')[1] for line in table.splitlines()[3:] if line.startswith('|')]
    listed = [m for row in rows for m in re.findall(r'`([a-z_]+)`', row)]
    assert sorted(listed) == sorted(config.METHODS)


def test_setup_and_test_commands():
    """Set-up without a hard-coded minor version; .ci/run runs the README's test command with the dev
    requirements; the runtime requirements hold no test or plotting package."""
    readme = _read('README.md')
    assert 'python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt' in readme
    assert 'python3.11' not in readme
    assert 'python -m pytest -q' in readme and 'requirements-dev.txt' in readme
    ci = _read('.ci/run')
    assert re.search(r'^python -m pip install .*-r requirements-dev\.txt', ci, re.M)
    assert re.search(r'^python -m pytest -q\b', ci, re.M)
    runtime = _read('requirements.txt').lower()
    assert not re.search(r'^(pytest|matplotlib)\b', runtime, re.M)
    dev = _read('requirements-dev.txt').lower()
    assert re.search(r'^-r requirements\.txt$', dev, re.M)
    assert re.search(r'^pytest\b', dev, re.M) and re.search(r'^matplotlib\b', dev, re.M)


def test_relative_links_exist():
    for doc in DOCS:
        if doc != 'README.md' and not os.path.exists(os.path.join(REPO, doc)):
            continue
        base = os.path.dirname(os.path.join(REPO, doc))
        for target in re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', _read(doc)):
            if '://' not in target:
                assert os.path.exists(os.path.join(base, target)), f'{doc}: broken link {target}'


# ------------------------------------------------------------------------------------ negative
SNIPPET = '''
Set-up and a run:

```bash
python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt && python main.py \\
    --datasource=sinusoid --metatrain_iterations=10  # a comment --not_a_flag
nice -n 5 python scripts/reproduce.py sine_k5_maml --iterations=200
for f in golden/*.npz; do python scripts/golden_check.py "$f" > /dev/null && echo ok; done
```

```python
python = 'not a command'
```

Inline: `python main.py --norm=None`, not inline: python main.py --bogus.
'''


def test_extraction_finds_every_command():
    assert python_commands(SNIPPET) == [
        (5, ['-m', 'venv', '.venv']),
        (5, ['main.py', '--datasource=sinusoid', '--metatrain_iterations=10']),
        (7, ['scripts/reproduce.py', 'sine_k5_maml', '--iterations=200']),
        (8, ['scripts/golden_check.py', '$f']),
        (15, ['main.py', '--norm=None']),
    ]
    for _, argv in python_commands(SNIPPET):
        dry_run(argv)


@pytest.mark.parametrize('line, why', [
    ('python main.py --datasource=sinusoid --no_such_flag=1', 'no_such_flag'),
    ('python main.py --metatrain_iterations=many', 'many'),
    ('python main.py --norm=group_norm', "unknown --norm='group_norm'"),
    ('python main.py --baseline=oracle --datasource=omniglot', 'needs --datasource=sinusoid'),
    ('python main.py --method=maml --inner_iters=5', 'means nothing to --method=maml'),
    ('python main.py --datasource=sinusoid logs/sine', "unexpected argument 'logs/sine'"),
    ('python scripts/reproduce.py sine_k5_mamll', 'unknown experiment'),
    ('python scripts/reproduce.py sine_k5_maml --iterations=0', 'must be >= 1'),
    ('python scripts/reproduce.py sine_k5_maml --iterations=200 --smoke', '--iterations and --smoke'),
    ('python scripts/plots.py curves --run DIR --out c.png --bogus', 'unrecognized arguments: --bogus'),
    ('python scripts/plots.py sketch --out c.png', 'invalid choice'),
    ('python scripts/report.py --logdir logs --format=html', 'unrecognized arguments'),
    ('python scripts/golden_check.py', 'golden'),
    ('python scripts/nonexistent.py --list', 'not main.py nor a script'),
])
def test_bad_command_fails(line, why):
    (_, argv), = python_commands(f'```bash\n{line}\n```\n')
    with pytest.raises(CommandError, match=re.escape(why)):
        dry_run(argv)
