"""Builds the TF-Agents DQN agent and the actors' epsilon-greedy action function."""

from typing import Mapping, Optional

import numpy as np
import tensorflow as tf
from tf_agents.agents.dqn import dqn_agent
from tf_agents.networks import q_network
from tf_agents.utils import common

from reverie.agents import numpy_mlp
from reverie.agents import optimizer
from reverie.agents import pixels
from reverie.agents.dqn.config import DqnConfig


def make_q_network(config: DqnConfig, observation_spec, action_spec) -> q_network.QNetwork:
  """An MLP from observations to one Q-value per action; conv layers first for pixels.

  Pixels (uint8 stacked frames) go through `config.conv_layer_params` (Nature
  DQN: 32-8-4, 64-4-2, 64-3-1) and then `fc_layer_params` ([512] there); the
  cast to float happens inside the network, so this takes the TF path on actors.
  """
  if not pixels.is_pixels(observation_spec):
    return q_network.QNetwork(observation_spec, action_spec,
                              fc_layer_params=tuple(config.fc_layer_params))
  return q_network.QNetwork(
      observation_spec, action_spec, preprocessing_layers=pixels.PixelsToFloat(),
      conv_layer_params=tuple(tuple(p) for p in config.conv_layer_params),
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
      # Clipped by the optimizer, after the replicas' gradients are summed (the
      # agent's own clipping would clip each replica's share).
      optimizer=optimizer.Adam(learning_rate=config.learning_rate,
                                clipnorm=config.gradient_clipping),
      epsilon_greedy=config.epsilon_end,
      n_step_update=1,
      target_update_tau=config.target_update_tau,
      target_update_period=config.target_update_period,
      td_errors_loss_fn=common.element_wise_huber_loss,
      gamma=config.gamma,
      gradient_clipping=None,
      train_step_counter=train_step)
  agent.initialize()
  return agent, network


def epsilon_at(config: DqnConfig, env_steps: int) -> float:
  """Linearly decayed exploration rate after `env_steps` steps of all actors."""
  fraction = min(1.0, env_steps / config.epsilon_decay_steps)
  return config.epsilon_start + fraction * (config.epsilon_end - config.epsilon_start)


class EpsilonGreedy:
  """One batched call per vector step: epsilon-greedy actions from a Q-network.

  Leaner than TF-Agents' EpsilonGreedyPolicy (no TimeStep plumbing), because
  it runs once per actor step: an MLP Q-network runs in numpy (see
  agents/numpy_mlp.py), any other network in one TF function. Call
  `refresh()` after the network's weights change.
  """

  def __init__(self, network: q_network.QNetwork, observation_spec, action_spec, seed: int,
               allow_numpy: bool = True):
    self._num_actions = int(action_spec.maximum - action_spec.minimum + 1)
    self._minimum = int(action_spec.minimum)
    self._dtype = np.dtype(tf.as_dtype(action_spec.dtype).as_numpy_dtype)
    self._rng = np.random.default_rng(seed)
    self._mlp = numpy_mlp.NumpyMlp.of_layers(_q_network_layers(network)) if allow_numpy else None
    if self._mlp is None:
      obs = tf.TensorSpec([None, *observation_spec.shape], observation_spec.dtype)
      self._q_values = tf.function(lambda o: network(o, training=False)[0],
                                   input_signature=[obs])

  @property
  def uses_numpy(self) -> bool:
    return self._mlp is not None

  def refresh(self, values: Optional[Mapping] = None) -> None:
    """Takes the network's new weights: read from its variables, or `values` when given.

    Args:
      values: Pulled weights as {variable.ref(): numpy array} (launch/actor.py's
        WeightPuller). The numpy path keeps them as they are and leaves the TF
        variables alone; the TF path assigns them to the variables.
    """
    if self._mlp is not None:
      self._mlp.refresh(values)
      return
    for ref, value in (values or {}).items():
      ref.deref().assign(value)

  def q_values(self, observation: np.ndarray) -> np.ndarray:
    if self._mlp is not None:
      return self._mlp(observation)
    return self._q_values(observation).numpy()

  def act(self, observation: np.ndarray, epsilon: float) -> np.ndarray:
    greedy = self.q_values(observation).argmax(axis=-1)
    if epsilon > 0:
      explore = self._rng.random(len(greedy)) < epsilon
      greedy = np.where(explore, self._rng.integers(0, self._num_actions, len(greedy)), greedy)
    return (greedy + self._minimum).astype(self._dtype)


def _q_network_layers(network: q_network.QNetwork):
  """The QNetwork's layers in call order, or [] when it preprocesses its inputs."""
  encoder = numpy_mlp.encoding_network_layers(network._encoder)  # pylint: disable=protected-access
  return [*encoder, network._q_value_layer] if encoder else []  # pylint: disable=protected-access
