"""Replay server role: a Reverb server with the agent's tables, reporting its size.

After every replay checkpoint it also reports the bytes the DQN table keeps
per transition (replay/bytes_per_transition, launch/replay_bytes.py).

Reverb's server has no bind-address option: it listens on every interface of
the host. Keep replay ports inside a private network (docs/security.md).
"""

import logging
import math
import pathlib
import time
from typing import Optional

import reverb
import tensorflow as tf
import tree

from reverie.agents import replay
from reverie.agents import pixels
from reverie.agents.dqn import agent as dqn_agent
from reverie.agents.dqn import frames
from reverie.agents.dqn import transitions
from reverie.launch import contract
from reverie.launch import replay_bytes
from reverie.launch.config import load_config
from reverie.launch.config_schema import Config, learner_workers, ppo_normalized
from reverie.launch.errors import ReverieError
from reverie.launch.run_state import RunState

log = logging.getLogger("reverie.replay_server")


def make_tables(config: Config, observation_spec, action_spec):
  """The agent's experience tables and the variables table, sized from config."""
  if config.agent.kind == "ppo":
    return _ppo_tables(config, observation_spec, action_spec)
  lanes, steps = config.actor.envs_per_actor, config.replay.steps_per_item
  if pixels.is_pixels(observation_spec):
    signature = frames.item_signature(observation_spec, action_spec, lanes, steps,
                                      config.agent.n_step_update)
  else:
    signature = transitions.item_signature(observation_spec, action_spec, lanes, steps,
                                           config.agent.n_step_update)
  per_item = lanes * steps
  items_per_call = config.learner.steps_per_call * config.learner.batch_size / per_item
  experience = replay.uniform_table(
      contract.EXPERIENCE_TABLE, signature,
      max_items=math.ceil(config.replay.max_size / per_item),
      min_items=math.ceil(config.replay.min_size / per_item),
      samples_per_insert=config.replay.samples_per_insert,
      error_buffer_items=4 * items_per_call,
      priority_exponent=(config.replay.priority_exponent
                         if config.replay.sampler == "prioritized" else None))
  network = dqn_agent.make_q_network(config.agent, observation_spec, action_spec)
  network.create_variables()
  variables = {contract.POLICY_KEY: network.variables,
               contract.TRAIN_STEP_KEY: tf.Variable(0, dtype=tf.int64)}
  return [experience, replay.variables_table(contract.VARIABLES_TABLE, variables)]


def _ppo_tables(config: Config, observation_spec, action_spec):
  """Two queues fed with the same rollouts (training, normalizers) and the variables table.

  Each actor writes one rollout per policy version and waits for the next, so
  a queue holds at most the current rollouts and stale ones still to drop.
  """
  from reverie.agents.ppo import agent as ppo_agent  # pylint: disable=g-import-not-at-top
  from reverie.agents.ppo import rollouts  # pylint: disable=g-import-not-at-top
  agent = ppo_agent.make_acting_agent(config.agent, observation_spec, action_spec)
  signature = rollouts.item_signature(agent, config.actor.envs_per_actor,
                                      config.agent.rollout_steps)
  size = config.actor.count * (config.agent.max_policy_lag_versions + 2)
  queues = [reverb.Table.queue(name, max_size=size, signature=signature)
            for name in contract.all_ppo_tables(learner_workers(config),
                                                 ppo_normalized(config))]
  variables = {contract.POLICY_KEY: ppo_agent.policy_variables(agent),
               contract.TRAIN_STEP_KEY: tf.Variable(0, dtype=tf.int64)}
  return [*queues, replay.variables_table(contract.VARIABLES_TABLE, variables)]


def start_replay_server(config: Config, run_dir: contract.RunDir, port: int, observation_spec,
                        action_spec) -> reverb.Server:
  """Starts the server in this process; it serves until `.stop()`.

  Reverb's checkpointer loads the newest complete checkpoint in RUN_DIR/replay
  when there is one (a resumed run), and writes new ones there.
  """
  tables = make_tables(config, observation_spec, action_spec)
  checkpointer = reverb.checkpointers.DefaultCheckpointer(path=str(run_dir.replay))
  server = reverb.Server(tables, port=port, checkpointer=checkpointer)
  _check_loaded_signatures(server, tables, run_dir)
  log.info("replay server listening on port %d (all interfaces: keep it on a private network)",
           port)
  return server


def _check_loaded_signatures(server: reverb.Server, tables, run_dir: contract.RunDir) -> None:
  """A table loaded from RUN_DIR/replay keeps the checkpoint's signature, not this run's.

  Items of another layout (written by an older Reverie) would fail at the
  first write or sample; this says so before any role starts, and leaves the
  checkpoint where it is.
  """
  loaded = server.localhost_client().server_info()
  for table in tables:
    if _layout(table.info.signature) != _layout(loaded[table.name].signature):
      server.stop()
      raise ReverieError(
          f"{run_dir.replay}: its checkpoint's table {table.name!r} holds items of another "
          f"layout than this Reverie writes (written by an older version?); move that folder "
          f"aside to resume without the replay buffer")


def _layout(signature):
  return [(path, spec.shape.as_list(), spec.dtype)
          for path, spec in tree.flatten_with_path(signature)]


def replay_items(client: reverb.Client) -> int:
  """Items in the server's experience tables (the variables table aside)."""
  info = client.server_info()
  return sum(table.current_size for name, table in info.items()
             if name != contract.VARIABLES_TABLE)


def checkpoint_replay(server: reverb.Server, run_dir: Optional[contract.RunDir] = None,
                      train_step: int = 0, summary=None) -> None:
  """Writes a Reverb checkpoint into RUN_DIR/replay; logs and goes on if it cannot.

  With `run_dir`, also measures the DQN table's bytes per transition from the
  checkpoint (launch/replay_bytes.py): a log line and `replay/bytes_per_transition`
  at `train_step`, into `summary` or a writer of RUN_DIR/tb/replay_server.
  """
  started = time.monotonic()
  try:
    path = server.localhost_client().checkpoint()
  except (reverb.errors.ReverbError, RuntimeError, ValueError) as e:
    log.warning("replay checkpoint failed: %s", e)
    return
  log.info("replay checkpoint %s (%d items) in %.2f s", path,
           replay_items(server.localhost_client()),
           time.monotonic() - started)
  if run_dir is not None:
    report_bytes_per_transition(server, path, run_dir, train_step, summary)


def report_bytes_per_transition(server: reverb.Server, checkpoint: str, run_dir: contract.RunDir,
                                train_step: int, summary=None) -> Optional[float]:
  """Logs and writes the DQN table's stored bytes per transition; None for PPO's queues."""
  info = server.localhost_client().server_info().get(contract.EXPERIENCE_TABLE)
  if info is None:
    return None
  measured = replay_bytes.table_bytes(pathlib.Path(checkpoint), contract.EXPERIENCE_TABLE)
  n_step = load_config(str(run_dir.config)).config.agent.n_step_update  # what the items span
  stored = measured["items"] * transitions.transitions_per_item(info.signature, n_step)
  if not stored:
    return None
  per_transition = measured["chunk_bytes"] / stored
  log.info("replay: %.0f bytes per transition (%d transitions in %.1f MB of chunks)",
           per_transition, stored, measured["chunk_bytes"] / 1e6)
  writer = summary or tf.summary.create_file_writer(str(run_dir.tensorboard("replay_server")))
  with writer.as_default(step=train_step):
    tf.summary.scalar("replay/bytes_per_transition", per_transition)
  writer.flush()
  return per_transition


def run_replay_server(server: reverb.Server, run_dir: contract.RunDir, state: RunState,
                      checkpoint_interval_seconds: float, interval_seconds: float = 2.0) -> None:
  """Writes replay/size and insert and sample rates to TensorBoard while the run goes and as it stops.

  Checkpoints the tables into RUN_DIR/replay every `checkpoint_interval_seconds`
  (the launcher writes one more at shutdown).
  """
  client = server.localhost_client()
  next_checkpoint = time.monotonic() + checkpoint_interval_seconds
  tables = client.server_info()
  table = next(t for t in sorted(tables)  # the DQN table, or the first PPO training queue
               if t == contract.EXPERIENCE_TABLE or t.startswith(contract.PPO_TRAIN_TABLE))
  writer = tf.summary.create_file_writer(str(run_dir.tensorboard("replay_server")))
  last = (time.monotonic(), None)

  def report(last):
    info = client.server_info()[table]
    now = time.monotonic()
    limiter = info.rate_limiter_info
    counts = limiter.insert_stats.completed, limiter.sample_stats.completed
    with writer.as_default(step=state.train_step):
      tf.summary.scalar("replay/size", info.current_size)
      if last[1] is not None:
        seconds = now - last[0]
        tf.summary.scalar("replay/inserts_per_second", (counts[0] - last[1][0]) / seconds)
        tf.summary.scalar("replay/samples_per_second", (counts[1] - last[1][1]) / seconds)
    return now, counts

  while not state.stop.wait(interval_seconds):
    last = report(last)
    if last[0] >= next_checkpoint:
      checkpoint_replay(server, run_dir, state.train_step, writer)
      next_checkpoint = time.monotonic() + checkpoint_interval_seconds
  try:  # the size at the end: a run shorter than one interval has no other
    report(last)
  except reverb.errors.ReverbError as e:
    log.warning("replay: last size report failed: %s", e)
  writer.close()
