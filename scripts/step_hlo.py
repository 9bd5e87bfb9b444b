"""The HLO that XLA compiles for MAML's meta-train step, from any checkout: two checkouts that print the same text
compile the same step, so a change that keeps it cannot change its speed (timings on a shared 2-core machine
vary by 10-20 % from run to run; this does not).

    python scripts/step_hlo.py [--code DIR] [--setting a] > step.hlo
    diff <(python scripts/step_hlo.py --code ../before) <(python scripts/step_hlo.py)

The step is `scripts/benchmark.py`'s (`build_model`, `make_batch`) of the checkout in DIR (default: this one), traced
and lowered but not compiled (seconds). Source locations and op names (`metadata={...}`) are left out: they name
files and lines, which move without changing what is computed.
"""
import argparse
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def step_hlo(code, setting):
    """The unoptimised HLO text (str) of `code`'s compiled meta-train step on `setting`'s shapes, without metadata."""
    sys.path[:0] = [code, os.path.join(code, 'scripts')]
    os.chdir(code)
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    import tensorflow as tf
    import benchmark
    s = benchmark.SETTINGS[setting]
    model = benchmark.build_model(s, 'xla')
    batch = [tf.constant(a) for a in benchmark.make_batch(s)]
    step = model._compiled('metatrain', model._metatrain_step, True)
    return re.sub(r', metadata=\{[^}]*\}', '', step.experimental_get_compiler_ir(*batch)(stage='hlo'))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--code', default=REPO, help='the checkout whose step to lower (default: this one)')
    p.add_argument('--setting', default='a', help="one of scripts/benchmark.py's settings (default a)")
    args = p.parse_args(argv)
    sys.stdout.write(step_hlo(os.path.abspath(args.code), args.setting))


if __name__ == '__main__':
    main()
