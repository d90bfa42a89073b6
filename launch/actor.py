"""Actor role: steps a batch of environments and writes n-step transitions to Reverb.

One batched policy call per vector step, one Reverb item every
`replay.steps_per_item` vector steps (agents/dqn/writer.py; pixels are stored
as single frames, agents/dqn/frames.py), fresh weights from the
variables table every `actor.weight_update_interval_steps` env steps.
"""

import logging
import threading
import time
from typing import Optional

import numpy as np
import reverb
import tensorflow as tf

from reverie.agents import replay
from reverie.agents.dqn import agent as dqn_agent
from reverie.agents.dqn.writer import ReplayWriter
from reverie.envs.batched import BatchStep, clip_rewards
from reverie.envs.registry import make_batched_env
from reverie.launch import contract
from reverie.launch.config_schema import Config
from reverie.launch.run_state import RunState

log = logging.getLogger("reverie.actor")
_PENDING_ITEMS = 8        # items in flight before the writer waits for the server
_FLUSH_TIMEOUT_MS = 1000  # then it re-checks whether the run stopped
_UNREACHABLE_AFTER_SECONDS = 5.0
_SUMMARY_SECONDS = 2.0


def run_actor(config: Config, index: int, server_address: str, run_dir: contract.RunDir,
              state: RunState) -> None:
  """Collects until the run stops or reaches `run.max_env_steps`."""
  lanes = config.actor.envs_per_actor
  env = make_batched_env(config.env.id, lanes, config.env.max_episode_steps,
                         env_config=config.env, training=True)
  network = dqn_agent.make_q_network(config.agent, env.observation_spec, env.action_spec)
  network.create_variables()
  policy = dqn_agent.EpsilonGreedy(network, env.observation_spec, env.action_spec,
                                   seed=config.seed * 1000 + index)
  variables = {contract.POLICY_KEY: network.variables,
               contract.TRAIN_STEP_KEY: tf.Variable(0, dtype=tf.int64)}
  container = replay.variable_container(server_address, contract.VARIABLES_TABLE)
  container.update(variables)
  policy.refresh()
  client = reverb.Client(server_address)
  stats = EpisodeStats(lanes, run_dir, index)

  observation = env.reset(seed=config.seed * 1000 + index * lanes)
  check_batch(observation, env.observation_spec, lanes, f"actor {index} observation")
  replay_writer = ReplayWriter(client, contract.EXPERIENCE_TABLE, env.observation_spec,
                               env.action_spec, observation, config.replay.steps_per_item,
                               config.agent.n_step_update, config.agent.gamma)
  writer = replay_writer.writer
  since_pull = 0
  log.info("actor %d: %d environments of %s", index, lanes, config.env.id)
  try:
    while not state.actors_should_stop():
      epsilon = dqn_agent.epsilon_at(config.agent, state.env_steps)
      action = policy.act(observation, epsilon)
      step = env.step(action)
      observation = step.observation
      replay_writer.add(action, clip_rewards(step) if config.env.clip_rewards else step)
      if replay_writer.item_ready():
        replay_writer.create_item()
        flush_writer(writer, state, client=client)
      since_pull += stats.add(step, state)
      if since_pull >= config.actor.weight_update_interval_steps:
        container.update(variables)
        policy.refresh()
        since_pull = 0
  finally:
    close_writer(writer)
    env.close()
    stats.close()


def close_writer(writer, timeout_seconds: float = 5.0) -> None:
  """Closes the writer without hanging the actor.

  Reverb's TrajectoryWriter.Close can block for good when the run stops while
  the rate limiter holds one of its inserts (seen under load); the close then
  goes on in a daemon thread that ends with the process.
  """
  closer = threading.Thread(target=writer.close, name="actor_writer_close", daemon=True)
  closer.start()
  closer.join(timeout_seconds)
  if closer.is_alive():
    log.warning("Reverb writer did not close within %.0f s; left to the process exit",
                timeout_seconds)


def flush_writer(writer, state: RunState, pending_items: int = _PENDING_ITEMS,
                 client: Optional[reverb.Client] = None) -> None:
  """Waits while the rate limiter holds inserts back, re-checking for the end of the run.

  A lost replay server looks the same from here: Reverb's writer keeps its
  items and resends them once the server (or a new one on the same address)
  is back. With `client`, a wait of more than `_UNREACHABLE_AFTER_SECONDS`
  asks the server whether it is there, and says so in the log (then again
  after twice as long each time).
  """
  started, next_probe = time.monotonic(), _UNREACHABLE_AFTER_SECONDS
  unreachable = False
  while not state.actors_should_stop():
    try:
      writer.flush(block_until_num_items=pending_items, timeout_ms=_FLUSH_TIMEOUT_MS)
      if unreachable:
        log.info("replay server back after %.0f s; writing again", time.monotonic() - started)
      return
    except reverb.errors.DeadlineExceededError:
      waited = time.monotonic() - started
      if client is None or waited < next_probe:
        continue
      next_probe *= 2
      try:
        client.server_info(timeout=1)
      except reverb.errors.DeadlineExceededError:
        unreachable = True
        log.warning("replay server unreachable for %.0f s; the actor keeps its items and "
                    "retries (next note after %.0f s)", waited, next_probe)


def check_batch(value: np.ndarray, spec, lanes: int, name: str) -> None:
  """Fails with the tensor's name, the expected spec and what arrived."""
  expected = (lanes, *spec.shape)
  if value.shape != expected or value.dtype != spec.dtype:
    raise ValueError(f"{name}: expected {np.dtype(spec.dtype).name}{list(expected)}, "
                     f"got {value.dtype.name}{list(value.shape)}")


class EpisodeStats:
  """Counts an actor's env steps and episodes; writes its rate and returns to TensorBoard."""

  def __init__(self, lanes: int, run_dir: contract.RunDir, index: int):
    self._return, self._length = np.zeros(lanes), np.zeros(lanes, np.int64)
    self._summary = tf.summary.create_file_writer(str(run_dir.tensorboard("actor", index)))
    self._own_steps = 0
    self._last = None  # (env steps of all actors, run state) at the newest step
    self._reset_window(time.monotonic())

  def _reset_window(self, start: float) -> None:
    self._start, self._start_steps = start, self._own_steps
    self._returns, self._lengths = [], []

  def add(self, step: BatchStep, state: RunState) -> int:
    """Books one vector step; returns how many lanes moved (a reset step moves none)."""
    moved = ~step.started
    self._return = np.where(step.started, 0.0, self._return + step.reward)
    self._length = np.where(step.started, 0, self._length + 1)
    ended = (step.terminated | step.truncated) & moved
    returns = self._return[ended].tolist()
    self._returns += returns
    self._lengths += self._length[ended].tolist()
    moved_count = int(moved.sum())
    env_steps = state.add_env_steps(moved_count, returns)
    self._own_steps += moved_count
    self._last = (env_steps, state)
    if time.monotonic() - self._start >= _SUMMARY_SECONDS:
      self._write(env_steps, state)
    return moved_count

  def _write(self, env_steps: int, state: RunState) -> None:
    """Writes at `env_steps` (all actors): this actor's rate and its finished episodes."""
    now = time.monotonic()
    rate = (self._own_steps - self._start_steps) / (now - self._start)
    state.env_steps_per_second = rate * state.actor_count
    with self._summary.as_default(step=env_steps):
      tf.summary.scalar("actor/env_steps_per_second", rate)
      if self._returns:
        tf.summary.scalar("actor/episode_return", float(np.mean(self._returns)))
        tf.summary.scalar("actor/episode_length", float(np.mean(self._lengths)))
    self._reset_window(now)

  def close(self) -> None:
    """Writes the last window (a short run's only one), then closes the writer."""
    if self._last is not None and self._own_steps > self._start_steps:
      self._write(*self._last)
    self._summary.close()
