"""Actor role: steps a batch of environments and writes n-step transitions to Reverb.

One batched policy call per vector step, one Reverb item every
`replay.steps_per_item` vector steps (agents/dqn/writer.py; pixels are stored
as single frames, agents/dqn/frames.py), fresh weights from the
variables table every `actor.weight_update_interval_steps` env steps (and
at most every 0.05 s), only when the learner has pushed since (`WeightPuller`),
pulled in a thread beside the loop (`BackgroundPuller`).
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
from reverie.envs.batched import clip_rewards
from reverie.envs.registry import make_batched_env
from reverie.launch import contract
from reverie.launch.config_schema import Config
from reverie.launch.episode_stats import EpisodeStats
from reverie.launch.run_state import RunState

log = logging.getLogger("reverie.actor")
_PENDING_ITEMS = 8        # items in flight before the writer waits for the server
_FLUSH_TIMEOUT_MS = 1000  # then it re-checks whether the run stopped
_UNREACHABLE_AFTER_SECONDS = 5.0
_MIN_PULL_SECONDS = 0.05  # between two looks for new weights, whatever the lane count
_SERVER_INFO_TIMEOUT_SECONDS = 1


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
  client = reverb.Client(server_address)
  puller = WeightPuller(client, contract.VARIABLES_TABLE, variables,
                        config.actor.weight_update_interval_steps)
  policy.refresh(puller.pull())
  pulls = BackgroundPuller(puller)
  stats = EpisodeStats(lanes, run_dir, index, rows_per_booking=config.replay.steps_per_item)

  observation = env.reset(seed=config.seed * 1000 + index * lanes)
  check_batch(observation, env.observation_spec, lanes, f"actor {index} observation")
  replay_writer = ReplayWriter(client, contract.EXPERIENCE_TABLE, env.observation_spec,
                               env.action_spec, observation, config.replay.steps_per_item,
                               config.agent.n_step_update, config.agent.gamma)
  writer = replay_writer.writer
  log.info("actor %d: %d environments of %s", index, lanes, config.env.id)
  try:
    epsilon = dqn_agent.epsilon_at(config.agent, state.env_steps)
    while not state.actors_should_stop():
      action = policy.act(observation, epsilon)
      step = env.step(action)
      observation = step.observation
      booked = stats.add(step, state)  # every item's vector steps, before a flush can wait
      if booked:
        epsilon = dqn_agent.epsilon_at(config.agent, state.env_steps)
        fresh = pulls.after_steps(booked)
        if fresh is not None:
          policy.refresh(fresh)
      replay_writer.add(action, clip_rewards(step) if config.env.clip_rewards else step)
      if replay_writer.item_ready():
        replay_writer.create_item()
        flush_writer(writer, state, client=client)
  finally:
    pulls.close()
    log.info("actor %d: %d weight pulls", index, puller.pulls)
    close_writer(writer)
    env.close()
    stats.close(state)


class WeightPuller:
  """Pulls the learner's newest weights as numpy arrays, only when it has pushed since.

  Every `interval_steps` env steps of the actor, and at most every
  `min_seconds`, it asks the server how many pushes the variables table has
  seen (`replay.table_info`: 0.28 ms on a slow day here, against 0.78 ms
  through Reverb's `server_info`); only after a new push does it pull them
  (0.26 ms on a faster day through Reverb's Python client for CartPole's
  MLP; TF-Agents' container took 0.9 ms). At 256 lanes 1,000 env steps are
  4 vector steps: pulling on every one of them took 71 % of the actor's time. A learner pushes after
  every `learner.steps_per_call` train steps (about 30 times a second in a
  DQN CartPole run here), so the minimum time bounds the pulls too.
  """

  def __init__(self, client: reverb.Client, table: str, variables, interval_steps: int,
               min_seconds: float = _MIN_PULL_SECONDS):
    self._client, self._table = client, table
    self._refs = [v.ref() for v in tf.nest.flatten(variables)]
    self._interval_steps, self._min_seconds = interval_steps, min_seconds
    self._since_steps, self._last_look = 0, time.monotonic()
    self._pushes = None  # inserts into the variables table at the last look
    self.pulls = 0       # weights pulled so far

  def pull(self, timeout_seconds: Optional[float] = None) -> Optional[dict]:
    """{variable.ref(): array} of a push not pulled before, or None.

    The first pull waits for the server and its first push (no timeout).
    """
    self._since_steps, self._last_look = 0, time.monotonic()
    info = replay.table_info(self._client, self._table, timeout_seconds)
    pushes = info.rate_limiter_info.insert_stats.completed
    if pushes == self._pushes:
      return None
    sample = next(self._client.sample(self._table, num_samples=1, emit_timesteps=False))
    self._pushes = pushes
    self.pulls += 1
    return {ref: value[0] for ref, value in zip(self._refs, sample.data)}  # [1, ...] -> [...]

  def due(self, env_steps: int) -> bool:
    """Counts the actor's env steps; True (and a new interval begins) when it is time to look."""
    self._since_steps += env_steps
    if (self._since_steps < self._interval_steps
        or time.monotonic() - self._last_look < self._min_seconds):
      return False
    self._since_steps, self._last_look = 0, time.monotonic()
    return True

  def look(self) -> Optional[dict]:
    """`pull()`, but a server that does not answer leaves the weights as they are (the
    writer's flush waits for it and says so)."""
    try:
      return self.pull(_SERVER_INFO_TIMEOUT_SECONDS)
    except (reverb.errors.ReverbError, RuntimeError) as e:
      log.debug("no weights pulled: %s", e)
      return None


class BackgroundPuller:
  """A WeightPuller whose looks and pulls run in a thread: the actor's loop never waits on them.

  Each look and pull is a round trip to the server (a pull makes a Reverb
  sampler). Inside a 64-lane actor's loop they took 4.4 % of its time in
  benchmarks/actor_throughput.py (py-spy), about 2 ms each while the
  learner pushed. Here the loop only counts steps, wakes the thread when the
  puller is due, and takes whatever weights it pulled since.
  """

  def __init__(self, puller: WeightPuller, name: str = "actor_weight_pull"):
    self._puller = puller
    self._lock = threading.Lock()
    self._fresh: Optional[dict] = None  # pulled and not yet taken
    self._error: Optional[BaseException] = None
    self._wanted, self._closing = threading.Event(), False
    self._thread = threading.Thread(target=self._run, name=name, daemon=True)
    self._thread.start()

  @property
  def pulls(self) -> int:
    return self._puller.pulls

  def after_steps(self, env_steps: int) -> Optional[dict]:
    """Counts env steps (waking the thread when the puller is due); returns the weights the
    thread pulled since the last call, or None."""
    if self._puller.due(env_steps):
      self._wanted.set()
    if self._fresh is None:
      if self._error is not None:
        raise self._error
      return None
    with self._lock:
      fresh, self._fresh = self._fresh, None
    return fresh

  def _run(self) -> None:
    try:
      while True:
        self._wanted.wait()
        self._wanted.clear()
        if self._closing:
          return
        fresh = self._puller.look()
        if fresh is not None:
          with self._lock:
            self._fresh = fresh
    except BaseException as e:  # pylint: disable=broad-except
      self._error = e  # raised in the actor's loop by its next after_steps

  def close(self, timeout_seconds: float = 5.0) -> None:
    self._closing = True
    self._wanted.set()
    self._thread.join(timeout_seconds)


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
