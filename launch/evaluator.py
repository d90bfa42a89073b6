"""Evaluator role: scores the newest greedy policy on its own environments and seeds.

`run_episodes` is shared with `reverie eval`, which scores exported policies.
"""

import dataclasses
import logging
import time
from typing import Callable, List

import numpy as np
import reverb
import tensorflow as tf

from reverie.agents.dqn import agent as dqn_agent
from reverie.envs.batched import BatchedEnv
from reverie.envs.registry import make_batched_env
from reverie.launch import contract
from reverie.launch.actor import WeightPuller
from reverie.launch.config_schema import Config
from reverie.launch.run_state import RunState

log = logging.getLogger("reverie.evaluator")
_NEW_WEIGHTS_POLL_SECONDS = 0.1  # between two looks for new weights once an evaluation is due


@dataclasses.dataclass
class Episodes:
  """Returns and lengths of finished episodes; episode i ran with seed + i."""

  returns: List[float]
  lengths: List[int]
  seed: int

  def summary(self) -> dict:
    returns = np.asarray(self.returns)
    return {"avg_return": float(returns.mean()), "std_return": float(returns.std()),
            "min_return": float(returns.min()), "max_return": float(returns.max()),
            "episodes": len(self.returns)}


def run_episodes(env: BatchedEnv, policy: Callable[[np.ndarray], np.ndarray],
                 seed: int) -> Episodes:
  """One episode per lane, all lanes side by side; lane i is seeded with seed + i."""
  lanes = env.num_envs
  observation = env.reset(seed=seed)
  returns, lengths = np.zeros(lanes), np.zeros(lanes, np.int64)
  running = np.ones(lanes, bool)
  while running.any():
    step = env.step(np.asarray(policy(observation)))
    returns += step.reward * running
    lengths += running
    running &= ~(step.terminated | step.truncated)
    observation = step.observation
  return Episodes(returns.tolist(), lengths.tolist(), seed)


def run_evaluator(config: Config, server_address: str, run_dir: contract.RunDir,
                  state: RunState) -> None:
  """Evaluates every `eval.interval_steps` env steps and once more when collection ends,
  each time weights it has not evaluated yet (it waits for the learner's next push).

  Stops the run when the average return reaches `run.stop_at_return` on
  `eval.episodes` episodes and again on as many episodes with other seeds.
  """
  env = make_batched_env(config.env.id, config.eval.episodes, config.env.max_episode_steps,
                         env_config=config.env)
  pulled, refresh, act = _greedy_policy(config, env)
  train_step = tf.Variable(0, dtype=tf.int64)
  variables = {contract.POLICY_KEY: pulled, contract.TRAIN_STEP_KEY: train_step}
  puller = WeightPuller(reverb.Client(server_address), contract.VARIABLES_TABLE, variables,
                        interval_steps=0)
  summary = tf.summary.create_file_writer(str(run_dir.tensorboard("evaluator")))
  next_eval = config.eval.interval_steps
  try:
    while not state.stop.is_set():
      final = state.collection_done.is_set()
      if not final and state.env_steps < next_eval:
        state.stop.wait(0.05)
        continue
      env_steps = state.env_steps
      values = puller.pull()  # {variable.ref(): array}, or None: no push since the last one
      if values is None:
        # The weights of the last evaluation: the same greedy policy on the same episodes
        # scores the same, so wait for new ones (at the end, the last score stands).
        if final:
          state.request_stop("reached run.max_env_steps")
        else:
          state.stop.wait(_NEW_WEIGHTS_POLL_SECONDS)
        continue
      refresh(values)
      episodes = run_episodes(env, act, config.eval.seed)
      result = {**episodes.summary(), "env_steps": env_steps,
                "train_step": int(values[train_step.ref()]), "time": time.time()}
      state.evals.append(result)
      with summary.as_default(step=env_steps):
        tf.summary.scalar("eval/avg_return", result["avg_return"])
        tf.summary.scalar("eval/std_return", result["std_return"])
      summary.flush()
      log.info("eval at env step %d (train step %d): %.1f +- %.1f over %d episodes",
               env_steps, result["train_step"], result["avg_return"], result["std_return"],
               result["episodes"])
      target = config.run.stop_at_return
      if target is not None and result["avg_return"] >= target:
        # Confirm on as many other episodes (other seeds) before stopping: one lucky
        # set of seeds is not a solved policy.
        confirm = run_episodes(env, act,
                               config.eval.seed + config.eval.episodes).summary()
        result["confirm_avg_return"] = confirm["avg_return"]
        log.info("confirmation on other seeds: %.1f", confirm["avg_return"])
        if confirm["avg_return"] >= target:
          state.solved_weights = [values[v.ref()] for v in pulled]
          state.request_stop(f"reached stop_at_return {target:g}")
          continue
      if final:
        state.request_stop("reached run.max_env_steps")
      next_eval = env_steps + config.eval.interval_steps
  finally:
    env.close()
    summary.close()


def _greedy_policy(config: Config, env: BatchedEnv):
  """(variables to pull, refresh after a pull, observations -> greedy actions) of the agent."""
  if config.agent.kind == "ppo":
    from reverie.agents.ppo import agent as ppo_agent  # pylint: disable=g-import-not-at-top
    agent = ppo_agent.make_acting_agent(config.agent, env.observation_spec, env.action_spec)
    policy = ppo_agent.BatchedPolicy(agent, env.observation_spec, env.action_spec,
                                     collect=False)
    return policy.variables, policy.refresh, policy.act
  network = dqn_agent.make_q_network(config.agent, env.observation_spec, env.action_spec)
  network.create_variables()
  greedy = dqn_agent.EpsilonGreedy(network, env.observation_spec, env.action_spec, seed=0)
  return network.variables, greedy.refresh, lambda observation: greedy.act(observation, 0.0)
