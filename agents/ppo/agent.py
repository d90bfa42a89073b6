"""Builds the TF-Agents PPO agent and the batched policy calls of actors and evaluators."""

from typing import Dict, List, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tf_agents.agents.ppo import ppo_actor_network
from tf_agents.agents.ppo import ppo_clip_agent
from tf_agents.networks import sequential
from tf_agents.networks import value_network
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from reverie.agents.ppo.config import PpoConfig


def is_discrete(action_spec) -> bool:
  return tf.as_dtype(action_spec.dtype).is_integer


def make_actor_network(config: PpoConfig, action_spec, seed: int):
  """An MLP to a Categorical (discrete actions) or a diagonal Normal (Box actions).

  Box actions: the mean is tanh-squashed into the bounds and the scale is one
  learned parameter per dimension (TF-Agents' PPOActorNetwork); samples can
  leave the bounds, so actors clip what they send to the environment and
  train on what the policy sampled.
  """
  if not is_discrete(action_spec):
    return ppo_actor_network.PPOActorNetwork().create_sequential_actor_net(
        config.actor_fc_layers, action_spec, seed=seed)
  if int(action_spec.minimum) != 0:
    raise ValueError(f"ppo takes discrete actions numbered from 0, got {action_spec.minimum}")
  num_actions = int(action_spec.maximum) + 1
  dtype = action_spec.dtype
  hidden = [tf.keras.layers.Dense(units, activation=tf.nn.tanh,
                                  kernel_initializer=tf.keras.initializers.Orthogonal(seed=seed))
            for units in config.actor_fc_layers]
  logits = tf.keras.layers.Dense(
      num_actions, kernel_initializer=tf.keras.initializers.Orthogonal(gain=0.01, seed=seed))
  to_distribution = tf.keras.layers.Lambda(
      lambda x: tfp.distributions.Categorical(logits=x, dtype=dtype))
  return sequential.Sequential([*hidden, logits, to_distribution])


def make_agent(config: PpoConfig, time_step_spec, action_spec, train_step: tf.Variable,
               seed: int = 0) -> ppo_clip_agent.PPOClipAgent:
  """A PPOClipAgent for PPOLearner: advantages in the data pipeline, normalizers in the learner.

  Call inside `strategy.scope()`. The agent's own epochs are 1: PPOLearner
  runs `config.num_epochs` passes of minibatches.
  """
  action_spec = tensor_spec.from_spec(action_spec)
  observation_spec = time_step_spec.observation
  actor = make_actor_network(config, action_spec, seed)
  value = value_network.ValueNetwork(
      observation_spec, fc_layer_params=tuple(config.value_fc_layers), activation_fn=tf.nn.tanh,
      kernel_initializer=tf.keras.initializers.Orthogonal(seed=seed + 1))
  agent = ppo_clip_agent.PPOClipAgent(
      time_step_spec, action_spec,
      optimizer=tf.keras.optimizers.Adam(learning_rate=config.learning_rate, epsilon=1e-5),
      actor_net=actor, value_net=value,
      greedy_eval=True,
      importance_ratio_clipping=config.clip_ratio,
      lambda_value=config.gae_lambda,
      discount_factor=config.gamma,
      entropy_regularization=config.entropy_coef,
      value_pred_loss_coef=config.value_loss_coef,
      num_epochs=1,
      use_gae=True,
      use_td_lambda_return=True,
      normalize_rewards=config.normalize_rewards,
      normalize_observations=config.normalize_observations,
      gradient_clipping=config.gradient_clipping,
      compute_value_and_advantage_in_train=False,
      update_normalizers_in_train=False,
      train_step_counter=train_step)
  agent.initialize()
  return agent


def make_acting_agent(config: PpoConfig, observation_spec, action_spec, seed: int = 0):
  """The agent an actor, an evaluator or the replay server builds from environment specs.

  Only its policies and specs are used; its train step is a throwaway.
  """
  observation_spec = tensor_spec.from_spec(observation_spec)
  return make_agent(config, ts.time_step_spec(observation_spec), action_spec,
                    tf.Variable(0, dtype=tf.int64), seed=seed)


def policy_variables(agent) -> List[tf.Variable]:
  """What actors and evaluators pull: actor and value networks and the observation normalizer."""
  return list(agent.collect_policy.variables())


class BatchedPolicy:
  """One TF call per vector step of a TF-Agents policy: observations and step types in, numpy out.

  `collect=True` returns (actions sent to the env, actions to train on, policy
  info); `collect=False` returns the greedy actions (the distribution's mode).
  Actions sent to the env are clipped to the bounds of a Box action space.
  """

  def __init__(self, agent, observation_spec, action_spec, collect: bool):
    self._policy = agent.collect_policy if collect else agent.policy
    self._collect = collect
    self._low = None if is_discrete(action_spec) else np.asarray(action_spec.minimum, np.float32)
    self._high = None if is_discrete(action_spec) else np.asarray(action_spec.maximum, np.float32)
    self.variables = policy_variables(agent)
    obs = tf.TensorSpec([None, *observation_spec.shape], observation_spec.dtype)
    step_types = tf.TensorSpec([None], tf.int32)
    # Sampling is not seeded: tf.random.set_seed clears TF's kernel cache, which
    # destroys the Reverb clients of every other role in this process.
    @tf.function(input_signature=[obs, step_types])
    def act(observation, step_type):
      batch = tf.shape(observation)[0]
      time_step = ts.TimeStep(step_type=step_type, reward=tf.zeros([batch]),
                              discount=tf.ones([batch]), observation=observation)
      step = self._policy.action(time_step)
      return step.action, step.info
    self._act = act

  def refresh(self) -> None:
    """Nothing to copy: the TF variables the container updates are the policy's own."""

  def _clip(self, action: np.ndarray) -> np.ndarray:
    return action if self._low is None else np.clip(action, self._low, self._high)

  def act(self, observation: np.ndarray, step_type=None) -> np.ndarray:
    """Greedy (or sampled) actions for the environment."""
    if step_type is None:
      step_type = np.full(len(observation), ts.StepType.MID, np.int32)
    action, _ = self._act(observation, step_type)
    return self._clip(action.numpy())

  def collect(self, observation: np.ndarray,
              step_type: np.ndarray) -> Tuple[np.ndarray, np.ndarray, Dict[str, np.ndarray]]:
    action, info = self._act(observation, step_type)
    action = action.numpy()
    return self._clip(action), action, tf.nest.map_structure(lambda t: t.numpy(), info)
