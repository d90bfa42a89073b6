"""Builds the TF-Agents DQN agent and the actors' epsilon-greedy action function."""

import tensorflow as tf
from tf_agents.agents.dqn import dqn_agent
from tf_agents.networks import q_network
from tf_agents.utils import common

from reverie.agents.dqn.config import DqnConfig


def make_q_network(config: DqnConfig, observation_spec, action_spec) -> q_network.QNetwork:
  """An MLP from observations to one Q-value per action."""
  return q_network.QNetwork(observation_spec, action_spec,
                            fc_layer_params=tuple(config.fc_layer_params))


def make_agent(config: DqnConfig, time_step_spec, action_spec, train_step: tf.Variable):
  """A DqnAgent (or DdqnAgent) that trains on 2-step trajectories.

  n-step returns are summed by the actors (see `transitions.py`), so the agent
  itself always sees one transition: reward is the n-step return and discount
  is gamma^(n-1) times "not terminal"; the agent multiplies in the last gamma.
  Call inside `strategy.scope()`.

  Returns:
    (agent, q_network): the agent and its online network, whose variables the
    learner pushes to the actors.
  """
  network = make_q_network(config, time_step_spec.observation, action_spec)
  agent_cls = dqn_agent.DdqnAgent if config.double_dqn else dqn_agent.DqnAgent
  agent = agent_cls(
      time_step_spec,
      action_spec,
      q_network=network,
      optimizer=tf.keras.optimizers.Adam(learning_rate=config.learning_rate),
      epsilon_greedy=config.epsilon_end,
      n_step_update=1,
      target_update_tau=config.target_update_tau,
      target_update_period=config.target_update_period,
      td_errors_loss_fn=common.element_wise_huber_loss,
      gamma=config.gamma,
      gradient_clipping=config.gradient_clipping,
      train_step_counter=train_step)
  agent.initialize()
  return agent, network


def epsilon_at(config: DqnConfig, env_steps: int) -> float:
  """Linearly decayed exploration rate after `env_steps` steps of all actors."""
  fraction = min(1.0, env_steps / config.epsilon_decay_steps)
  return config.epsilon_start + fraction * (config.epsilon_end - config.epsilon_start)


class EpsilonGreedy(tf.Module):
  """One batched call per vector step: epsilon-greedy actions from a Q-network.

  Leaner than TF-Agents' EpsilonGreedyPolicy (no TimeStep plumbing), which
  matters because this call runs once per actor step.
  """

  def __init__(self, network: q_network.QNetwork, observation_spec, action_spec, seed: int):
    super().__init__()
    self.network = network
    self._num_actions = int(action_spec.maximum - action_spec.minimum + 1)
    self._minimum = int(action_spec.minimum)
    self._dtype = tf.as_dtype(action_spec.dtype)
    self._rng = tf.random.Generator.from_seed(seed)
    obs = tf.TensorSpec([None, *observation_spec.shape], observation_spec.dtype)
    self.act = tf.function(self._act, input_signature=[obs, tf.TensorSpec([], tf.float32)])

  def _act(self, observation, epsilon):
    q_values, _ = self.network(observation, training=False)
    greedy = tf.argmax(q_values, axis=-1, output_type=tf.int64)
    random = self._rng.uniform(tf.shape(greedy), 0, self._num_actions, dtype=tf.int64)
    explore = self._rng.uniform(tf.shape(greedy)) < epsilon
    return tf.cast(tf.where(explore, random, greedy) + self._minimum, self._dtype)
