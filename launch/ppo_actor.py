"""PPO actor role: one rollout per policy version, tagged with the version, then wait.

The actor pulls the newest weights and their version (the learner's train
step), collects `agent.rollout_steps` vector steps plus a bootstrap step with
the collect policy, writes them as one item into both PPO queues, and waits
until the learner publishes a newer version. So it never fills the queue
with data the learner would have to drop, and with several actors none of
them can starve the learner: each owes exactly one rollout per version.
"""

import logging
import time

import numpy as np
import reverb
import tensorflow as tf

from reverie.agents import replay
from reverie.agents.ppo import agent as ppo_agent
from reverie.agents.ppo import rollouts
from reverie.envs.batched import clip_rewards
from reverie.envs.registry import make_batched_env
from reverie.launch import contract
from reverie.launch.actor import EpisodeStats, check_batch, close_writer, flush_writer
from reverie.launch.config_schema import Config, learner_workers, ppo_frames_per_version
from reverie.launch.config_schema import ppo_normalized
from reverie.launch.run_state import RunState

log = logging.getLogger("reverie.actor")
_VERSION_POLL_SECONDS = 0.005


def run_ppo_actor(config: Config, index: int, server_address: str, run_dir: contract.RunDir,
                  state: RunState) -> None:
  """Collects rollouts until the run stops or one more version would pass `run.max_env_steps`.

  Under multi_worker (held actors) it collects until released, past the budget
  if need be: a learner worker may be waiting for the next version's data.
  """
  lanes = config.actor.envs_per_actor
  env = make_batched_env(config.env.id, lanes, config.env.max_episode_steps,
                         env_config=config.env, training=True)
  agent = ppo_agent.make_acting_agent(config.agent, env.observation_spec, env.action_spec,
                                      seed=config.seed)
  policy = ppo_agent.BatchedPolicy(agent, env.observation_spec, env.action_spec, collect=True,
                                   seed=config.seed * 1000 + index)
  version = tf.Variable(-1, dtype=tf.int64)
  variables = {contract.POLICY_KEY: policy.variables, contract.TRAIN_STEP_KEY: version}
  container = replay.variable_container(server_address, contract.VARIABLES_TABLE)
  client = reverb.Client(server_address)
  writer = client.trajectory_writer(num_keep_alive_refs=1)
  stats = EpisodeStats(lanes, run_dir, index)

  observation = env.reset(seed=config.seed * 1000 + index * lanes)
  check_batch(observation, env.observation_spec, lanes, f"actor {index} observation")
  rollout = rollouts.RolloutBuilder(config.agent.rollout_steps, observation)
  used = -1
  tables = contract.all_ppo_tables(learner_workers(config), ppo_normalized(config))
  frames, start, rollouts_written = ppo_frames_per_version(config), state.env_steps, 0
  log.info("actor %d: %d environments of %s, %d steps per rollout", index, lanes, config.env.id,
           config.agent.rollout_steps)
  try:
    while not state.actors_should_stop():
      # Every actor makes the same call: the run's env steps after one more version.
      if not state.hold_actors and start + (rollouts_written + 1) * frames > state.max_env_steps:
        state.collection_done.set()
        break
      if not _wait_for_version(container, client, variables, version, used, state):
        break
      used = int(version.numpy())
      policy.refresh()
      while not rollout.needs_bootstrap_step:
        to_env, sampled, info = policy.collect(rollout.observation, rollout.step_type)
        step = env.step(to_env)
        rollout.add(sampled, info, clip_rewards(step) if config.env.clip_rewards else step)
        stats.add(step, state)
      _, sampled, info = policy.collect(rollout.observation, rollout.step_type)
      rollout.add(sampled, info, None)  # the bootstrap step: its value closes the last advantage
      rollouts.append_item(writer, {"trajectory": rollout.take(), "version": np.int64(used)},
                           tables)
      flush_writer(writer, state, pending_items=0, client=client)
      rollouts_written += 1
  finally:
    close_writer(writer)
    env.close()
    stats.close()


def _wait_for_version(container, client: reverb.Client, variables, version: tf.Variable,
                      used: int, state: RunState) -> bool:
  """Pulls weights until their version is newer than `used`; False if the run stops first.

  Polls the variables table's insert count (0.7 ms here) and pulls the weights
  (3.6 ms for a small MLP) only when the learner has pushed since the last look.
  """
  seen = None
  while not state.actors_should_stop():
    pushes = client.server_info()[contract.VARIABLES_TABLE].rate_limiter_info.insert_stats.completed
    if pushes != seen:
      seen = pushes
      container.update(variables)
      if int(version.numpy()) > used:
        return True
    time.sleep(_VERSION_POLL_SECONDS)
  return False
