"""The roles as bodies of processes, shared by every launcher.

The local launcher runs the learner with `learner_role` in its main thread
and the other roles in threads; the Ray launcher (launch/ray_launcher.py)
and `reverie replay-server|actor|learner|evaluator` (by hand) run one role
per process with `run_role_process`, whose `RunState` a `StateLink` keeps in
step with the run's hub (launch/hub.py).
"""

import logging
import os
import pathlib
import sys
import threading
from typing import Callable, Optional

from reverie.launch import contract
from reverie.launch import strategy as strategy_lib
from reverie.launch.config_schema import Config
from reverie.launch.errors import ReverieError
from reverie.launch.hub import StateLink, Sync
from reverie.launch.run_state import RunState

log = logging.getLogger("reverie.launch")
PROCESS_ROLES = ("actor", "learner", "evaluator")


def configure_tensorflow(config: Config) -> None:
  """Process-wide TensorFlow settings; before anything starts TF's runtime.

  Also numpy's BLAS threads (agents/numpy_mlp.py), here in the launching
  thread rather than in the first actor that needs it.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from reverie.agents import numpy_mlp  # pylint: disable=g-import-not-at-top
  numpy_mlp.one_blas_thread()
  try:
    tf.config.threading.set_intra_op_parallelism_threads(config.learner.intra_op_threads)
    log.info("TensorFlow intra-op threads: %d (0 = one per core)",
             tf.config.threading.get_intra_op_parallelism_threads())
    strategy_lib.configure_devices(config.strategy)
  except RuntimeError:  # the runtime is up already (a second run in one process)
    log.warning("learner.intra_op_threads=%d and device settings not applied: TensorFlow is "
                "already initialized", config.learner.intra_op_threads)


def env_specs(config: Config):
  """(observation_spec, action_spec) of the configured environment."""
  from reverie.envs.registry import make_batched_env  # pylint: disable=g-import-not-at-top
  env = make_batched_env(config.env.id, 1, config.env.max_episode_steps, env_config=config.env)
  specs = env.observation_spec, env.action_spec
  env.close()
  return specs


def make_learner(config: Config, run_dir: contract.RunDir, address: str, strategy):
  """The agent's learner; it pushes its first weights to Reverb as it starts."""
  from tf_agents.specs import tensor_spec  # pylint: disable=g-import-not-at-top
  from tf_agents.trajectories import time_step as ts  # pylint: disable=g-import-not-at-top
  from reverie.launch.learner import DqnLearner  # pylint: disable=g-import-not-at-top
  from reverie.launch.ppo_learner import PpoLearner  # pylint: disable=g-import-not-at-top
  observation_spec, action_spec = env_specs(config)
  time_step_spec = tensor_spec.from_spec(ts.time_step_spec(observation_spec))
  learner_cls = PpoLearner if config.agent.kind == "ppo" else DqnLearner
  return learner_cls(config, run_dir, address, strategy, time_step_spec,
                     tensor_spec.from_spec(action_spec))


def learner_role(config: Config, run_dir: contract.RunDir, address: str, strategy,
                 state: RunState, resume: Optional[Callable] = None,
                 started: Optional[Callable[[], None]] = None) -> None:
  """Builds the learner, trains until the run stops, then checkpoints and exports.

  `resume(learner)` puts back a checkpoint before training; `started()` runs
  once the first weights are in Reverb (the local launcher starts its actors
  there). Ctrl-C or SIGTERM (state.interrupted) saves a checkpoint and
  exports nothing; otherwise the learner waits for the final eval and
  exports the weights it confirmed (or its own).
  """
  from reverie.launch.learner import run_learner  # pylint: disable=g-import-not-at-top
  learner = make_learner(config, run_dir, address, strategy)
  if config.agent.kind == "ppo":
    # PPOLearner waits for rollouts inside one graph call, with no timeout to
    # return on: when the run stops, a stop marker in each queue ends that wait.
    threading.Thread(target=end_ppo_wait_when_done, args=(address, state), name="ppo_stop",
                     daemon=True).start()
  if resume is not None:
    resume(learner)
  if started is not None:
    started()
  try:
    run_learner(learner, state)
  except BaseException as e:
    state.fail(e)
    raise
  if state.interrupted:  # Ctrl-C or SIGTERM (launch/signals.py): keep the learner's progress
    learner.save_checkpoint(state)
    return
  while not state.stop.wait(0.1):  # collection ended: the evaluator scores the last weights
    pass
  if state.error is not None:
    raise state.error
  if state.solved_weights is not None:
    learner.load_weights(state.solved_weights)
    log.info("loaded the weights the evaluator confirmed (%s) for the final export",
             state.stop_reason)
  learner.save_checkpoint(state)
  learner.export(final=True)


def resume_learner(learner, run_dir: contract.RunDir, state: RunState, replay_items: int,
                   note: Callable[[str], None]) -> None:
  """Puts the learner and the run's counters back; says what came back."""
  restored = learner.restore()
  if restored is None:
    raise ReverieError(f"--resume {run_dir.root}: no checkpoint in {run_dir.checkpoints}; "
                       "nothing to resume, start a new run")
  for path, why in restored["skipped"]:
    note(f"checkpoint {pathlib.Path(path).name} is unreadable ({why}); left as it is, "
         f"resuming from {pathlib.Path(restored['path']).name}")
  with state.lock:
    state.train_step = restored["train_step"]
    state.env_steps, state.episodes = restored["env_steps"], restored["episodes"]
    state.evals = restored["evals"]
    if state.env_steps >= state.max_env_steps:
      state.collection_done.set()
  note(f"resumed from train step {restored['train_step']:,}, env step "
       f"{restored['env_steps']:,}; replay restored: {replay_items:,} items")
  from reverie.launch import lineage  # pylint: disable=g-import-not-at-top
  lineage.append_resume(run_dir, sys.argv, restored["train_step"])


def end_ppo_wait_when_done(address: str, state: RunState) -> None:
  """When the run stops, puts a stop marker into each PPO queue (a full one needs none)."""
  import reverb  # pylint: disable=g-import-not-at-top
  from reverie.agents import replay  # pylint: disable=g-import-not-at-top
  from reverie.agents.ppo import rollouts  # pylint: disable=g-import-not-at-top
  from reverie.launch.actor import close_writer  # pylint: disable=g-import-not-at-top
  state.stop.wait()
  client = reverb.Client(address)
  info = client.server_info()
  for table in (t for t in (contract.PPO_TRAIN_TABLE, contract.PPO_NORMALIZATION_TABLE)
                if t in info):  # no normalization queue without normalizers
    writer = client.trajectory_writer(num_keep_alive_refs=1)
    replay.write_item(writer, rollouts.stop_marker(info[table].signature), [table])
    try:
      writer.flush(timeout_ms=1000)
    except reverb.errors.DeadlineExceededError:
      pass  # the queue is full, so the learner is not waiting on it
    close_writer(writer)


def write_pid(run_dir: contract.RunDir, role: str, index: int) -> None:
  path = run_dir.pid(role, index)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(f"{os.getpid()}\n")


def setup_process_log(run_dir: contract.RunDir, role: str, index: int) -> None:
  """This process is one role: every `reverie` log record goes to logs/<role>_<i>.log."""
  path = run_dir.log(role, index)
  path.parent.mkdir(parents=True, exist_ok=True)
  handler = logging.FileHandler(path)
  handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
  root = logging.getLogger("reverie")
  root.setLevel(logging.INFO)
  root.propagate = False  # the terminal (or Ray's worker log) shows what the role prints
  root.addHandler(handler)


def write_restart(run_dir: contract.RunDir, index: int, restarts: int, env_steps: int) -> None:
  """actor/restarts at the run's env step: how often actor `index` has come back."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  writer = tf.summary.create_file_writer(str(run_dir.tensorboard("actor", index)))
  with writer.as_default(step=env_steps):
    tf.summary.scalar("actor/restarts", restarts)
  writer.close()


def run_role_process(role: str, index: int, run_dir: contract.RunDir, address: str,
                     sync: Sync, register: Callable[[str, str, int], int], node: str = "",
                     resume: bool = False, ready: Optional[threading.Event] = None,
                     state: Optional[RunState] = None) -> None:
  """Runs actor, learner or evaluator `index` in this process until the run stops.

  `register(role, node, pid)` tells the hub this role started and returns how
  often it started before: a restarted actor writes `actor/restarts`. Raises
  what the role raised, after the hub has heard of it. `state` is this
  process's RunState (made here when not given).
  """
  from reverie.launch.config import load_config  # pylint: disable=g-import-not-at-top
  config = load_config(str(run_dir.config)).config
  setup_process_log(run_dir, role, index)
  write_pid(run_dir, role, index)
  name = f"{role}_{index}"
  threading.current_thread().name = name
  restarts = register(name, node, os.getpid())
  configure_tensorflow(config)
  if state is None:
    state = RunState(max_env_steps=config.run.max_env_steps, actor_count=config.actor.count)
  link = StateLink(state, sync, name, run_dir).start()
  log.info("%s: pid %d on node %s, replay server %s%s", name, os.getpid(), node or "-", address,
           f", restart {restarts}" if restarts else "")
  try:
    if role == "actor":
      if restarts:
        write_restart(run_dir, index, restarts, state.env_steps)
      _actor_fn(config)(config, index, address, run_dir, state)
    elif role == "evaluator":
      from reverie.launch.evaluator import run_evaluator  # pylint: disable=g-import-not-at-top
      run_evaluator(config, address, run_dir, state)
    elif role == "learner":
      _learner_process(config, run_dir, address, state, resume, ready)
    else:
      raise ValueError(f"unknown role {role!r}; one of {', '.join(PROCESS_ROLES)}")
  except BaseException as e:
    if not state.stop.is_set() or state.error is None:
      log.exception("%s failed", name)
      state.fail(e)
    raise
  finally:
    link.close()
  log.info("%s: done (%s)", name, state.stop_reason)


def _actor_fn(config: Config):
  if config.agent.kind == "ppo":
    from reverie.launch.ppo_actor import run_ppo_actor  # pylint: disable=g-import-not-at-top
    return run_ppo_actor
  from reverie.launch.actor import run_actor  # pylint: disable=g-import-not-at-top
  return run_actor


def _learner_process(config: Config, run_dir: contract.RunDir, address: str, state: RunState,
                     resume: bool, ready: Optional[threading.Event]) -> None:
  import reverb  # pylint: disable=g-import-not-at-top
  from reverie.launch.replay_server import replay_items  # pylint: disable=g-import-not-at-top
  strategy = strategy_lib.make_strategy(config.strategy)
  resumed = None
  if resume:
    resumed = lambda learner: resume_learner(
        learner, run_dir, state, replay_items(reverb.Client(address)), log.info)
  learner_role(config, run_dir, address, strategy, state, resumed,
               started=ready.set if ready is not None else None)
