"""How the `reverie` command and the learner workers start: TensorFlow quiet, and the heavy
imports without Python's garbage collector.
"""

import contextlib
import functools
import gc
import importlib
import os
import sys
import warnings


# What a learner imports when it starts (launch/roles.make_learner).
LEARNER_MODULES = ("reverie.launch.learner", "reverie.launch.ppo_learner")


def import_frozen(*modules: str) -> None:
  """Imports `modules` as `_imports` does: without the garbage collector, then frozen."""
  with _imports():
    for module in modules:
      importlib.import_module(module)


# Optional imports of the heavy modules that Reverie never uses: TF's Keras tries pandas (for
# Model.fit on DataFrames), and where the ray extra is installed it finds it.
_UNUSED_OPTIONAL = ("pandas",)


@contextlib.contextmanager
def _imports():
  """Python's cyclic garbage collector off while heavy modules import, then what they made
  frozen out of its way; `_UNUSED_OPTIONAL` not importable meanwhile.

  Importing TensorFlow, TF-Agents and Reverb makes about 540k long-lived
  objects, and the collector's full passes over them as they grew took a
  quarter of a start: the imports of `reverie train` took 2.0-2.1 s with it
  and 1.42-1.48 s without, here. `gc.freeze()` keeps them out of every later
  pass (launch/cli.py's main() starts with the collector off, for the imports before these).

  With the ray extra installed, Keras's import of pandas cost every start
  about 0.2 s here (the first evaluation of a DQN CartPole run came at 2.29 s
  with it, 2.09 s without: benchmarks/results/time_to_solve_ab.txt); Keras
  takes the ImportError as "no pandas". The modules are importable again
  afterwards (Ray imports pandas where it needs it).
  """
  gc.disable()
  blocked = [name for name in _UNUSED_OPTIONAL if name not in sys.modules]
  for name in blocked:
    sys.modules[name] = None  # `import name` raises ImportError
  try:
    yield
  finally:
    for name in blocked:
      if name in sys.modules and sys.modules[name] is None:  # still our block
        del sys.modules[name]
    gc.freeze()
    gc.enable()


@functools.cache
def quiet_tensorflow() -> None:
  """TF's C++ start-up notes and gym's banner say nothing a Reverie user can act on.

  Once a process: the train path calls it from several places, and a second
  `_imports()` would freeze again whatever the command made in between.
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  warnings.filterwarnings("ignore", category=SyntaxWarning)  # autograph's generated code
  warnings.filterwarnings("ignore", message="Encoding a StructuredValue with type tfp")
  with _imports():
    from reverie.envs.registry import import_legacy_gym  # pylint: disable=g-import-not-at-top
    import_legacy_gym()
    import absl.logging  # pylint: disable=g-import-not-at-top
    absl.logging.set_verbosity(absl.logging.ERROR)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.get_logger().setLevel("ERROR")
