"""PPO actor role: one rollout per policy version, tagged with the version, then wait.

The actor pulls the newest weights and their version (the learner's train
step), collects `agent.rollout_steps` vector steps plus a bootstrap step with
the collect policy, writes them as one item into its PPO queues, and waits
until the learner publishes a newer version. So it never fills the queue
with data the learner would have to drop, and with several actors none of
them can starve the learner: each owes exactly one rollout per version.
"""

import logging
import time
from typing import Optional

import numpy as np
import reverb
import tensorflow as tf

from reverie.agents import replay
from reverie.agents.ppo import agent as ppo_agent
from reverie.agents.ppo import rollouts
from reverie.envs.batched import clip_rewards
from reverie.envs.registry import make_batched_env
from reverie.launch import contract
from reverie.launch.actor import WeightPuller, check_batch, close_writer
from reverie.launch.actor import flush_writer
from reverie.launch.config_schema import Config, learner_workers, ppo_frames_per_version
from reverie.launch.config_schema import ppo_normalized
from reverie.launch.episode_stats import EpisodeStats
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
  client = reverb.Client(server_address)
  puller = WeightPuller(client, contract.VARIABLES_TABLE, variables, interval_steps=0)
  writer = client.trajectory_writer(num_keep_alive_refs=1)
  stats = EpisodeStats(lanes, run_dir, index, rows_per_booking=config.agent.rollout_steps)

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
      values = _wait_for_version(puller, version.ref(), used, state)
      if values is None:
        break
      used = int(values[version.ref()])
      policy.refresh(values)
      while not rollout.needs_bootstrap_step:
        to_env, sampled, info = policy.collect(rollout.observation, rollout.step_type)
        step = env.step(to_env)
        rollout.add(sampled, info, clip_rewards(step) if config.env.clip_rewards else step)
        stats.add(step, state)
      _, sampled, info = policy.collect(rollout.observation, rollout.step_type)
      rollout.add(sampled, info, None)  # the bootstrap step: its value closes the last advantage
      replay.write_item(writer, {"trajectory": rollout.take(), "version": np.int64(used)},
                        tables)
      flush_writer(writer, state, pending_items=0, client=client)
      rollouts_written += 1
  finally:
    close_writer(writer)
    env.close()
    stats.close(state)


def _wait_for_version(puller: WeightPuller, version_ref, used: int,
                      state: RunState) -> Optional[dict]:
  """The pulled weights ({variable.ref(): array}) once their version is newer than `used`.

  None if the run stops first. Looks at the variables table's insert count
  (about 0.2 ms) and pulls only after a push (about 0.3 ms as numpy arrays;
  TF-Agents' variable container took 3.6 ms for CartPole's two MLPs).
  """
  while not state.actors_should_stop():
    values = puller.pull()
    if values is not None and int(values[version_ref]) > used:
      return values
    time.sleep(_VERSION_POLL_SECONDS)
  return None
