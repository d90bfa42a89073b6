"""Learner role as a process: one of `strategy.workers` under MultiWorkerMirroredStrategy.

    TF_CONFIG=... python -m reverie.launch.learner_worker RUN_DIR REPLAY_ADDRESS [--remote]

Every worker builds the same learner from RUN_DIR/config.yaml, reads its own
Reverb dataset and trains in lockstep with the others. All of them save
checkpoints and export policies (MultiWorkerMirroredStrategy requires it),
but only the chief writes into RUN_DIR; the others write into a scratch
directory that is deleted at exit. Only the chief pushes weights.

The launcher (launch/local_workers.py) talks to a worker through pipes:
  stdin   one line: `stop` (export the newest weights), `stop PATH` (export
          the weights in the .npz file PATH: the ones the evaluator scored), or
          `interrupt` (checkpoint, no export); end of input counts as `interrupt`.
  stdout  JSON lines: {"train_step", "steps_per_second"} from the chief while
          it trains, {"done": train_step} at the end, {"error", "exit_code"}.
Between calls the workers agree on stopping with one all-reduce, so they
always run the same number of collective steps.

`--remote` is for a worker started by hand on another host (docs/multi_gpu.md):
it takes no orders on stdin and stops when the chief does.
"""

import json
import logging
import os
import pathlib
import sys
import tempfile
import threading
from typing import List, Optional

_REPORT_SECONDS = 0.5


class StopRequest:
  """What the launcher asked on stdin; set once."""

  def __init__(self):
    self.event = threading.Event()
    self.weights_path: Optional[str] = None
    self.interrupted = False

  def read(self, stream) -> None:
    line = stream.readline().strip()
    words = line.split(maxsplit=1)
    if not words or words[0] == "interrupt":
      self.interrupted = True
    elif len(words) == 2:
      self.weights_path = words[1]
    self.event.set()


def main(argv: Optional[List[str]] = None) -> int:
  args = argv if argv is not None else sys.argv[1:]
  run_root, address = args[:2]
  remote = "--remote" in args[2:]
  logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                      format="%(asctime)s %(levelname)s %(message)s")
  from reverie.launch.errors import ReverieError, TrainingFailed  # pylint: disable=g-import-not-at-top
  from reverie.launch import startup  # pylint: disable=g-import-not-at-top
  startup.import_frozen("tensorflow", *startup.LEARNER_MODULES)  # as `reverie train` starts
  try:
    step = _train(pathlib.Path(run_root), address, remote)
  except (ReverieError, TrainingFailed) as e:
    _report({"error": str(e), "exit_code": e.exit_code})
    logging.getLogger("reverie.learner").error("%s", e)
    return e.exit_code
  _report({"done": step})
  return 0


def _train(run_root: pathlib.Path, address: str, remote: bool) -> int:
  request = StopRequest()
  if not remote:
    threading.Thread(target=request.read, args=(sys.stdin,), daemon=True).start()
  return train_worker(run_root, address, request)


def train_worker(run_root: pathlib.Path, address: str, request: StopRequest,
                 state=None) -> int:
  """Trains as one worker of TF_CONFIG's cluster until `request`; returns the last train step.

  With `state` (the Ray launcher's Ray Train workers), the learner counts
  into it; without, the chief reports its progress on stdout.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from reverie.launch import contract  # pylint: disable=g-import-not-at-top
  from reverie.launch import strategy as strategy_lib  # pylint: disable=g-import-not-at-top
  from reverie.launch.config import load_config  # pylint: disable=g-import-not-at-top
  from reverie.launch.roles import make_learner  # pylint: disable=g-import-not-at-top

  config = load_config(str(run_root / "config.yaml")).config
  tf.config.threading.set_intra_op_parallelism_threads(config.learner.intra_op_threads)
  strategy_lib.configure_devices(config.strategy)
  strategy = strategy_lib.make_strategy(config.strategy)  # before any other op runs
  index = strategy_lib.worker_index(strategy)
  log = logging.getLogger("reverie.learner")
  log.info("learner worker %d of %d (%s)", index, strategy_lib.worker_count(strategy),
           "chief" if index == 0 else "its outputs go to a scratch directory")
  with tempfile.TemporaryDirectory(prefix=f"reverie-worker{index}-") as scratch:
    run_dir = contract.RunDir(run_root if index == 0 else scratch)
    learner = make_learner(config, run_dir, address, strategy)
    return _run(learner, strategy, request, chief=index == 0, state=state)


def _run(learner, strategy, request: StopRequest, chief: bool, state=None) -> int:
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from reverie.launch.learner import run_learner  # pylint: disable=g-import-not-at-top
  from reverie.launch.run_state import RunState  # pylint: disable=g-import-not-at-top

  def agreed_stop() -> bool:  # one all-reduce per call, on every worker
    flags = strategy.run(lambda: tf.constant(
        [float(request.event.is_set()), float(request.interrupted)]))
    stop, interrupted = strategy.reduce(tf.distribute.ReduceOp.SUM, flags, axis=None).numpy()
    request.interrupted = bool(interrupted > 0)  # every worker then saves the same way
    return bool(stop > 0)

  if state is None:
    state = RunState(max_env_steps=learner.config.run.max_env_steps)
    if chief:
        threading.Thread(target=_report_progress, args=(state, request), daemon=True).start()
  run_learner(learner, state, should_stop=agreed_stop)
  if request.interrupted:
    learner.save_checkpoint()
    return int(learner.train_step.numpy())
  if request.weights_path:
    with np.load(request.weights_path, allow_pickle=False) as saved:
      learner.load_weights([saved[f"arr_{i}"] for i in range(len(saved.files))])
  learner.save_checkpoint()
  learner.export(final=True)
  return int(learner.train_step.numpy())


def _report_progress(state, request: StopRequest) -> None:
  while not request.event.wait(_REPORT_SECONDS):
    _report({"train_step": state.train_step, "steps_per_second": state.learner_steps_per_second})


def _report(record: dict) -> None:
  sys.stdout.write(json.dumps(record) + "\n")
  sys.stdout.flush()


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  sys.exit(main())
