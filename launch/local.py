"""Local launcher: every role in one process, Reverb in-process, roles in threads.

The learner runs in the main thread (Ctrl-C lands there); actors, the
evaluator and the replay server's reporter run in threads named after their
role, and each role's log goes to RUN_DIR/logs/<role>_<i>.log.
"""

import logging
import sys
import threading
import time
import traceback
from typing import Callable, List, Optional

import portpicker

from reverie.launch import contract
from reverie.launch import roles
from reverie.launch import strategy as strategy_lib
from reverie.launch.actor import run_actor
from reverie.launch.config_schema import Config
from reverie.launch.evaluator import run_evaluator
from reverie.launch.local_workers import LearnerWorkers
from reverie.launch.ppo_actor import run_ppo_actor
from reverie.launch.progress import Progress
from reverie.launch.replay_server import (checkpoint_replay, replay_items, run_replay_server,
                                          start_replay_server)
from reverie.launch.run_state import RunState

log = logging.getLogger("reverie.launch")


def run_local(config: Config, run_dir: contract.RunDir, progress: Progress,
              state: RunState, resume: bool = False) -> None:
  """Runs every role until the run stops; raises what a role raised.

  The learner runs in this process's main thread, or under multi_worker as
  `strategy.workers` processes (launch/local_workers.py). With `resume`, the
  learner and counters come back from the newest readable checkpoint and the
  replay server from its newest checkpoint in RUN_DIR/replay.
  """
  workers = config.strategy.kind == "multi_worker"
  threading.current_thread().name = "launcher_0" if workers else "learner_0"
  roles.configure_tensorflow(config)
  port = config.replay.port or portpicker.pick_unused_port()
  observation_spec, action_spec = roles.env_specs(config)
  strategy = None if workers else strategy_lib.make_strategy(config.strategy)
  server = start_replay_server(config, run_dir, port, observation_spec, action_spec)
  progress.note(f"replay server on port {port} (Reverb listens on every interface)")
  address = f"localhost:{port}"
  roles.write_pid(run_dir, "replay_server", 0)
  threads = [_start("replay_server_0", state, run_replay_server, server, run_dir, state,
                    config.replay.checkpoint_interval_seconds)]
  try:
    if workers:
      _run_with_workers(config, run_dir, address, state, threads)
    else:
      resumed = lambda learner: roles.resume_learner(
          learner, run_dir, state, replay_items(server.localhost_client()), progress.note)
      _run_in_process(config, run_dir, address, strategy, state, threads,
                      resumed if resume else None)
  finally:
    state.request_stop("shutting down")
    state.actors_released.set()
    _join(threads, timeout_seconds=30)
    checkpoint_replay(server, run_dir, state.train_step)
    server.stop()


def _start_collection(config: Config, run_dir: contract.RunDir, address: str, state: RunState,
                      threads: List[threading.Thread]) -> None:
  """Actors and the evaluator, in threads."""
  actor_fn = run_ppo_actor if config.agent.kind == "ppo" else run_actor
  for i in range(config.actor.count):
    roles.write_pid(run_dir, "actor", i)
    threads.append(_start(f"actor_{i}", state, actor_fn, config, i, address, run_dir, state))
  roles.write_pid(run_dir, "evaluator", 0)
  threads.append(_start("evaluator_0", state, run_evaluator, config, address, run_dir, state))


def _run_in_process(config: Config, run_dir: contract.RunDir, address: str, strategy,
                    state: RunState, threads: List[threading.Thread],
                    resume: Optional[Callable] = None) -> None:
  """The learner in this thread; actors and the evaluator start once it has pushed weights."""
  roles.write_pid(run_dir, "learner", 0)
  roles.learner_role(config, run_dir, address, strategy, state, resume,
                     started=lambda: _start_collection(config, run_dir, address, state, threads))


def _run_with_workers(config: Config, run_dir: contract.RunDir, address: str, state: RunState,
                      threads: List[threading.Thread]) -> None:
  """Learner worker processes; actors keep collecting until every worker has stopped.

  A worker may be waiting for data inside a collective step when the run
  stops; the actors' data lets it finish that step and agree to stop.
  """
  state.hold_actors = True
  learners = LearnerWorkers(config, run_dir, address, state)
  try:
    _start_collection(config, run_dir, address, state, threads)
    learners.watch(until=state.stop.is_set)
    if state.error is not None:
      raise state.error
    learners.stop(state.solved_weights, interrupted=state.interrupted,
                  timeout_seconds=config.strategy.collective_timeout_seconds)
  except BaseException as e:
    state.fail(e)
    raise
  finally:
    learners.kill()
    state.actors_released.set()


def _start(name: str, state: RunState, target: Callable, *args) -> threading.Thread:
  """Runs a role in a thread on the CPU: on a GPU host only the learner takes GPU memory."""
  def body():
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    try:
      with tf.device("/cpu:0"):  # thread-local in TensorFlow's eager context
        target(*args)
    except BaseException as e:  # pylint: disable=broad-except
      if not state.stop.is_set():
        logging.getLogger("reverie.launch").exception("%s failed", name)
        state.fail(e)
  thread = threading.Thread(target=body, name=name, daemon=True)
  thread.start()
  return thread


def _join(threads: List[threading.Thread], timeout_seconds: float) -> None:
  """Joins the role threads within one deadline; logs where any of them is stuck."""
  deadline = time.monotonic() + timeout_seconds
  for thread in threads:
    thread.join(timeout=max(0.0, deadline - time.monotonic()))
  for thread in threads:
    frame = sys._current_frames().get(thread.ident)  # pylint: disable=protected-access
    if thread.is_alive() and frame is not None:
      log.warning("%s did not stop within %.0f s; left to the process exit. It is at:\n%s",
                  thread.name, timeout_seconds, "".join(traceback.format_stack(frame)))


class RoleLogFilter(logging.Filter):
  """Passes the records of the thread named `<role>_<i>` and its helpers (`<role>_<i>_...`)."""

  def __init__(self, thread_name: str):
    super().__init__()
    self._name = thread_name

  def filter(self, record):
    return record.threadName == self._name or record.threadName.startswith(self._name + "_")


def setup_role_logs(run_dir: contract.RunDir, config: Config,
                    names: Optional[List[str]] = None) -> None:
  """One log file per role thread of this process: logs/<role>_<i>.log.

  `names` are the threads' names; by default the local launcher's roles.
  """
  if names is None:
    names = ["replay_server_0", "evaluator_0"]
    names += [f"actor_{i}" for i in range(config.actor.count)]
    # Under multi_worker the learners are processes that write their own logs.
    names.append("launcher_0" if config.strategy.kind == "multi_worker" else "learner_0")
  root = logging.getLogger("reverie")
  root.setLevel(logging.INFO)
  root.propagate = False  # the terminal shows the progress line, not role logs
  for name in names:
    role, _, index = name.rpartition("_")
    path = run_dir.log(role, int(index))
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(RoleLogFilter(name))
    root.addHandler(handler)
