"""The CLI imports TensorFlow with Python's garbage collector off, and turns it back on."""

import gc
import subprocess
import sys

from reverie.launch import cli
from reverie.launch import startup


def test_heavy_imports_run_without_the_collector_then_freeze_and_turn_it_on():
  # A fresh interpreter: TensorFlow is imported here for the first time, as `reverie` does.
  check = ("import gc, sys; from reverie.launch import startup; gc.disable(); "
           "startup.quiet_tensorflow(); "
           "print(gc.isenabled(), gc.get_freeze_count(), 'tensorflow' in sys.modules)")
  result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  enabled, frozen, imported = result.stdout.split()
  assert enabled == "True" and imported == "True"
  assert int(frozen) > 100_000  # TensorFlow's module objects, out of the collector's passes


def test_imports_context_pauses_the_collector():
  assert gc.isenabled()
  frozen = gc.get_freeze_count()
  try:
    with startup._imports():  # pylint: disable=protected-access
      assert not gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() > frozen
  finally:
    gc.unfreeze()  # this test process's objects go back to the collector


def test_tensorflow_imports_without_pandas_which_stays_importable():
  # Keras imports pandas when it can (the ray extra, which `make test` installs, brings it);
  # Reverie never hands Keras a DataFrame, and the import cost every start about 0.2 s.
  check = ("import sys, importlib.util; from reverie.launch import startup; "
           "assert importlib.util.find_spec('pandas'), 'pandas not installed: make test adds it'; "
           "startup.quiet_tensorflow(); import tf_agents; print('pandas' in sys.modules); "
           "import pandas; print(pandas.DataFrame({'a': [1]}).shape)")
  result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.split("\n")[:2] == ["False", "(1, 1)"]


def test_imports_context_leaves_an_imported_pandas_alone():
  import pandas  # pylint: disable=g-import-not-at-top
  try:
    with startup._imports():  # pylint: disable=protected-access
      assert sys.modules["pandas"] is pandas
  finally:
    gc.unfreeze()


def test_a_command_without_heavy_imports_leaves_the_collector_on(capsys):
  assert cli.main(["config", "dqn_cartpole"]) == 0
  assert "learner.batch_size" in capsys.readouterr().out
  assert gc.isenabled()
