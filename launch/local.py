"""Local launcher: every role in one process, Reverb in-process, roles in threads.

The learner runs in the main thread (Ctrl-C lands there); actors, the
evaluator and the replay server's reporter run in threads named after their
role, and each role's log goes to RUN_DIR/logs/<role>_<i>.log.
"""

import logging
import os
import pathlib
import sys
import threading
import time
import traceback
from typing import Callable, List, Optional

import portpicker

from reverie.envs.batched import BatchedEnv
from reverie.envs.registry import make_batched_env
from reverie.launch import contract
from reverie.launch import strategy as strategy_lib
from reverie.launch.actor import run_actor
from reverie.launch.config_schema import Config
from reverie.launch.errors import ReverieError
from reverie.launch.evaluator import run_evaluator
from reverie.launch.learner import DqnLearner, run_learner
from reverie.launch.local_workers import LearnerWorkers
from reverie.launch.ppo_actor import run_ppo_actor
from reverie.launch.ppo_learner import PpoLearner
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
  _configure_tensorflow(config)
  port = config.replay.port or portpicker.pick_unused_port()
  env: BatchedEnv = make_batched_env(config.env.id, 1, config.env.max_episode_steps,
                                     env_config=config.env)
  observation_spec, action_spec = env.observation_spec, env.action_spec
  env.close()
  strategy = None if workers else strategy_lib.make_strategy(config.strategy)
  server = start_replay_server(config, run_dir, port, observation_spec, action_spec)
  progress.note(f"replay server on port {port} (Reverb listens on every interface)")
  address = f"localhost:{port}"
  _write_pid(run_dir, "replay_server", 0)
  threads = [_start("replay_server_0", state, run_replay_server, server, run_dir, state,
                    config.replay.checkpoint_interval_seconds)]
  try:
    if workers:
      _run_with_workers(config, run_dir, address, state, threads)
    else:
      resumed = lambda learner: _resume(learner, server, run_dir, progress, state)
      _run_in_process(config, run_dir, address, strategy, state, threads,
                      observation_spec, action_spec, resumed if resume else None)
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
    _write_pid(run_dir, "actor", i)
    threads.append(_start(f"actor_{i}", state, actor_fn, config, i, address, run_dir, state))
  _write_pid(run_dir, "evaluator", 0)
  threads.append(_start("evaluator_0", state, run_evaluator, config, address, run_dir, state))


def _run_in_process(config: Config, run_dir: contract.RunDir, address: str, strategy,
                    state: RunState, threads: List[threading.Thread], observation_spec,
                    action_spec, resume: Optional[Callable] = None) -> None:
  """The learner in this thread; the final checkpoint and exports when the run stops."""
  from tf_agents.specs import tensor_spec  # pylint: disable=g-import-not-at-top
  from tf_agents.trajectories import time_step as ts  # pylint: disable=g-import-not-at-top
  time_step_spec = tensor_spec.from_spec(ts.time_step_spec(observation_spec))
  action_tensor_spec = tensor_spec.from_spec(action_spec)
  if config.agent.kind == "ppo":
    learner = PpoLearner(config, run_dir, address, strategy, time_step_spec, action_tensor_spec)
    # PPOLearner waits for rollouts inside one graph call, with no timeout to
    # return on: when the run stops, a stop marker in each queue ends that wait.
    threads.append(_start("ppo_stop", state, _end_ppo_wait_when_done, address, state))
  else:
    learner = DqnLearner(config, run_dir, address, strategy, time_step_spec, action_tensor_spec)
  if resume is not None:
    resume(learner)
  _start_collection(config, run_dir, address, state, threads)
  _write_pid(run_dir, "learner", 0)
  try:
    run_learner(learner, state)
  except BaseException as e:
    state.fail(e)
    raise
  if state.interrupted:  # Ctrl-C or SIGTERM (launch/signals.py): keep the learner's progress
    learner.save_checkpoint(state)
    return
  _wait_for_final_eval(state)
  if state.error is not None:
    raise state.error
  if state.solved_weights is not None:
    learner.load_weights(state.solved_weights)
  learner.save_checkpoint(state)
  learner.export(final=True)


def _resume(learner, server, run_dir: contract.RunDir, progress: Progress,
            state: RunState) -> None:
  """Puts the learner and the run's counters back; says what came back."""
  restored = learner.restore()
  if restored is None:
    raise ReverieError(f"--resume {run_dir.root}: no checkpoint in {run_dir.checkpoints}; "
                       "nothing to resume, start a new run")
  for path, why in restored["skipped"]:
    progress.note(f"checkpoint {pathlib.Path(path).name} is unreadable ({why}); left as it is, "
                  f"resuming from {pathlib.Path(restored['path']).name}")
  with state.lock:
    state.train_step = restored["train_step"]
    state.env_steps, state.episodes = restored["env_steps"], restored["episodes"]
    state.evals = restored["evals"]
    if state.env_steps >= state.max_env_steps:
      state.collection_done.set()
  items = replay_items(server)
  progress.note(f"resumed from train step {restored['train_step']:,}, env step "
                f"{restored['env_steps']:,}; replay restored: {items:,} items")
  from reverie.launch import lineage  # pylint: disable=g-import-not-at-top
  lineage.append_resume(run_dir, sys.argv, restored["train_step"])


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


def _configure_tensorflow(config: Config) -> None:
  """Process-wide TensorFlow settings; before anything starts TF's runtime."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    tf.config.threading.set_intra_op_parallelism_threads(config.learner.intra_op_threads)
    log.info("TensorFlow intra-op threads: %d (0 = one per core)",
             tf.config.threading.get_intra_op_parallelism_threads())
    strategy_lib.configure_devices(config.strategy)
  except RuntimeError:  # the runtime is up already (run_local called twice in one process)
    log.warning("learner.intra_op_threads=%d and device settings not applied: TensorFlow is "
                "already initialized", config.learner.intra_op_threads)


def _end_ppo_wait_when_done(address: str, state: RunState) -> None:
  """When the run stops, puts a stop marker into each PPO queue (a full one needs none)."""
  import reverb  # pylint: disable=g-import-not-at-top
  from reverie.agents.ppo import rollouts  # pylint: disable=g-import-not-at-top
  from reverie.launch.actor import close_writer  # pylint: disable=g-import-not-at-top
  state.stop.wait()
  client = reverb.Client(address)
  info = client.server_info()
  for table in (contract.PPO_TRAIN_TABLE, contract.PPO_NORMALIZATION_TABLE):
    writer = client.trajectory_writer(num_keep_alive_refs=1)
    rollouts.append_item(writer, rollouts.stop_marker(info[table].signature), [table])
    try:
      writer.flush(timeout_ms=1000)
    except reverb.errors.DeadlineExceededError:
      pass  # the queue is full, so the learner is not waiting on it
    close_writer(writer)


def _wait_for_final_eval(state: RunState) -> None:
  """The learner ends when collection does; the evaluator then scores the last weights."""
  while not state.stop.wait(0.1):
    pass


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


def _write_pid(run_dir: contract.RunDir, role: str, index: int) -> None:
  path = run_dir.pid(role, index)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(f"{os.getpid()}\n")


class RoleLogFilter(logging.Filter):
  """Passes the records of threads named `<role>_<i>`."""

  def __init__(self, thread_name: str):
    super().__init__()
    self._name = thread_name

  def filter(self, record):
    return record.threadName == self._name


def setup_role_logs(run_dir: contract.RunDir, config: Config) -> None:
  """One log file per role thread: logs/<role>_<i>.log."""
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
