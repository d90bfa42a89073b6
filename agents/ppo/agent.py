"""Builds the TF-Agents PPO agent and the batched policy calls of actors and evaluators."""

from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tf_agents.agents.ppo import ppo_actor_network
from tf_agents.agents.ppo import ppo_agent
from tf_agents.agents.ppo import ppo_clip_agent
from tf_agents.keras_layers import bias_layer
from tf_agents.networks import nest_map
from tf_agents.networks import sequential
from tf_agents.networks import value_network
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts
from tf_agents.utils import common
from tf_agents.utils import value_ops

from reverie.agents import numpy_mlp
from reverie.agents import optimizer
from reverie.agents import pixels
from reverie.agents.ppo.config import PpoConfig


_per_replica_normalize_advantages = ppo_agent._normalize_advantages  # pylint: disable=protected-access


def normalize_advantages_across_replicas(advantages, axes=(0, 1), variance_epsilon=1e-8):
  """PPOAgent's minibatch advantage normalization, with the moments of the global minibatch.

  TF-Agents normalizes each replica's share of a minibatch by its own mean
  and variance, so N replicas would train on other advantages than one
  device does; here the moments come from all replicas (two all-reduces).
  """
  context = tf.distribute.get_replica_context()
  if context is None or context.num_replicas_in_sync == 1:
    return _per_replica_normalize_advantages(advantages, axes, variance_epsilon)
  total = tf.reduce_sum(advantages, axis=axes, keepdims=True)
  count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(advantages), axes)), advantages.dtype)
  total, count = context.all_reduce(tf.distribute.ReduceOp.SUM, [total, count])
  mean = total / count
  squares = context.all_reduce(
      tf.distribute.ReduceOp.SUM,
      tf.reduce_sum(tf.math.squared_difference(advantages, mean), axis=axes, keepdims=True))
  return tf.nn.batch_normalization(advantages, mean, squares / count, offset=None, scale=None,
                                   variance_epsilon=variance_epsilon)


# PPOAgent._train calls the module's function by name.
ppo_agent._normalize_advantages = normalize_advantages_across_replicas  # pylint: disable=protected-access


class TimeLimitPPOClipAgent(ppo_clip_agent.PPOClipAgent):
  """TF-Agents' PPOClipAgent, with returns that bootstrap where a time limit cut an episode.

  TF-Agents ends the return at every LAST step, so an episode cut by a time
  limit (truncated: LAST with discount 1) counts as if its state were
  terminal, and the value of e.g. CartPole's 500th state is learned as 1,
  not 1 / (1 - gamma). Here such a step's reward also carries
  gamma * V(o_{t+1}), the actor's value prediction at the cut-off
  observation, and the return and the GAE sum still end there: what
  Stable-Baselines3 does with time-outs. Terminal steps (discount 0) are as
  before. The rest is PPOAgent.compute_return_and_advantage without its debug
  summaries.
  """

  def compute_return_and_advantage(self, next_time_steps: ts.TimeStep, value_preds):
    discounts = next_time_steps.discount * tf.constant(self._discount_factor, tf.float32)
    rewards = next_time_steps.reward
    if self._reward_normalizer:
      rewards = self._reward_normalizer.normalize(rewards, center_mean=False,
                                                  clip_value=self._reward_norm_clipping)
    truncated = tf.logical_and(next_time_steps.is_last(), next_time_steps.discount > 0)
    rewards += tf.where(truncated, discounts * value_preds[:, 1:], tf.zeros_like(rewards))
    discounts *= common.get_episode_mask(next_time_steps)  # the sums end at every LAST step
    returns = value_ops.discounted_return(rewards, discounts, time_major=False,
                                          final_value=value_preds[:, -1])
    advantages = self.compute_advantages(rewards, returns, discounts, value_preds)
    if self._use_td_lambda_return and self._use_gae:
      returns = tf.add(advantages, value_preds[:, :-1], name="td_lambda_returns")
    return returns, advantages


def is_discrete(action_spec) -> bool:
  return tf.as_dtype(action_spec.dtype).is_integer


def make_actor_network(config: PpoConfig, action_spec, seed: int, observation_spec=None):
  """An MLP to a Categorical (discrete actions) or a diagonal Normal (Box actions).

  Box actions: the mean is tanh-squashed into the bounds and the scale is one
  learned parameter per dimension; samples can leave the bounds, so actors
  clip what they send to the environment and train on what the policy sampled.
  Pixel observations go through `config.conv_layer_params` and ReLU layers first.
  """
  if not is_discrete(action_spec):
    return _normal_actor_network(config, action_spec, seed)
  if int(action_spec.minimum) != 0:
    raise ValueError(f"ppo takes discrete actions numbered from 0, got {action_spec.minimum}")
  num_actions = int(action_spec.maximum) + 1
  dtype = action_spec.dtype
  on_pixels = observation_spec is not None and pixels.is_pixels(observation_spec)
  torso = pixels.conv_layers(config.conv_layer_params, seed) if on_pixels else []
  hidden = torso + [
      tf.keras.layers.Dense(units, activation=tf.nn.relu if on_pixels else tf.nn.tanh,
                            kernel_initializer=tf.keras.initializers.Orthogonal(
                                gain=2 ** 0.5 if on_pixels else 1.0, seed=seed))
      for units in config.actor_fc_layers]
  logits = tf.keras.layers.Dense(
      num_actions, kernel_initializer=tf.keras.initializers.Orthogonal(gain=0.01, seed=seed))
  to_distribution = tf.keras.layers.Lambda(
      lambda x: tfp.distributions.Categorical(logits=x, dtype=dtype))
  return sequential.Sequential([*hidden, logits, to_distribution])


def _normal_actor_network(config: PpoConfig, action_spec, seed: int) -> sequential.Sequential:
  """TF-Agents' PPOActorNetwork layout, with the starting std from config.

  PPOActorNetwork starts every dimension at std 0.35 in action units, whatever
  the range: narrow exploration for Pendulum's [-2, 2]. Here the std starts at
  `initial_action_std` times half the range.
  """
  dims = action_spec.shape.num_elements()
  half_range = (np.asarray(action_spec.maximum, np.float64)
                - np.asarray(action_spec.minimum, np.float64)) / 2.0
  std = np.broadcast_to(config.initial_action_std * half_range, [dims])
  inverse_softplus = np.log(np.expm1(std))

  def to_distribution(loc_and_scale):
    return tfp.distributions.MultivariateNormalDiag(
        loc=ppo_actor_network.tanh_and_scale_to_spec(loc_and_scale["loc"], action_spec),
        scale_diag=tf.math.softplus(loc_and_scale["scale"]), validate_args=True)

  hidden = [tf.keras.layers.Dense(units, activation=tf.nn.tanh,
                                  kernel_initializer=tf.keras.initializers.Orthogonal(seed=seed))
            for units in config.actor_fc_layers]
  means = tf.keras.layers.Dense(
      dims, kernel_initializer=tf.keras.initializers.VarianceScaling(scale=0.1, seed=seed),
      name="means_projection_layer")
  return sequential.Sequential([
      *hidden, means,
      tf.keras.layers.Lambda(lambda x: {"loc": x, "scale": tf.zeros_like(x)}),
      nest_map.NestMap({
          "loc": tf.keras.layers.Lambda(lambda x: x),
          "scale": bias_layer.BiasLayer(
              bias_initializer=tf.constant_initializer(inverse_softplus.astype(np.float32))),
      }),
      tf.keras.layers.Lambda(to_distribution),
  ])


def make_value_network(config: PpoConfig, observation_spec, seed: int):
  """An MLP (tanh) to one value; for pixels a conv torso of its own first (ReLU).

  TF-Agents' PPOAgent takes the actor and the value network as two networks
  and calls each on the observations, so the conv torso is not shared: each
  network has its own (CleanRL's ppo_atari shares one).
  """
  if not pixels.is_pixels(observation_spec):
    return value_network.ValueNetwork(
        observation_spec, fc_layer_params=tuple(config.value_fc_layers),
        activation_fn=tf.nn.tanh, kernel_initializer=tf.keras.initializers.Orthogonal(seed=seed))
  return value_network.ValueNetwork(
      observation_spec, preprocessing_layers=pixels.PixelsToFloat(),
      conv_layer_params=tuple(tuple(p) for p in config.conv_layer_params),
      fc_layer_params=tuple(config.value_fc_layers), activation_fn=tf.nn.relu,
      kernel_initializer=tf.keras.initializers.Orthogonal(gain=2 ** 0.5, seed=seed))


def make_agent(config: PpoConfig, time_step_spec, action_spec, train_step: tf.Variable,
               seed: int = 0, total_updates: Optional[int] = None) -> TimeLimitPPOClipAgent:
  """A PPOClipAgent for PPOLearner: advantages in the data pipeline, normalizers in the learner.

  Call inside `strategy.scope()`. The agent's own epochs are 1: PPOLearner
  runs `config.num_epochs` passes of minibatches. With
  `config.anneal_learning_rate`, the learning rate decays linearly to 0 over
  `total_updates` optimizer steps (the learner's; acting agents never train).
  """
  action_spec = tensor_spec.from_spec(action_spec)
  observation_spec = time_step_spec.observation
  actor = make_actor_network(config, action_spec, seed, observation_spec)
  learning_rate = config.learning_rate
  if config.anneal_learning_rate and total_updates:
    learning_rate = tf.keras.optimizers.schedules.PolynomialDecay(
        config.learning_rate, decay_steps=total_updates, end_learning_rate=0.0)
  value = make_value_network(config, observation_spec, seed + 1)
  agent = TimeLimitPPOClipAgent(
      time_step_spec, action_spec,
      # Clipped by the optimizer, after the replicas' gradients are summed (the
      # agent's own clipping would clip each replica's share).
      optimizer=optimizer.Adam(learning_rate=learning_rate, epsilon=1e-5,
                               global_clipnorm=config.gradient_clipping),
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
      gradient_clipping=None,
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
  """One call per vector step of a TF-Agents PPO policy: observations and step types in, numpy out.

  `collect=True` returns (actions sent to the env, actions to train on, policy
  info); `collect=False` returns the greedy actions (the distribution's mode).
  Actions sent to the env are clipped to the bounds of a Box action space.
  A Categorical policy of plain MLPs without observation normalization runs in
  numpy (see agents/numpy_mlp.py and `NumpyCategorical`); any other policy in
  one TF function. Call `refresh()` after the policy's variables change.
  """

  def __init__(self, agent, observation_spec, action_spec, collect: bool, seed: int = 0,
               allow_numpy: bool = True):
    self._policy = agent.collect_policy if collect else agent.policy
    self._collect = collect
    self._low = None if is_discrete(action_spec) else np.asarray(action_spec.minimum, np.float32)
    self._high = None if is_discrete(action_spec) else np.asarray(action_spec.maximum, np.float32)
    self.variables = policy_variables(agent)
    self._numpy = NumpyCategorical.of_agent(agent, action_spec, seed) if allow_numpy else None
    if self._numpy is not None:
      return
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

  @property
  def uses_numpy(self) -> bool:
    return self._numpy is not None

  def refresh(self, values: Optional[Mapping] = None) -> None:
    """Takes new weights: read from the policy's variables, or `values` when given.

    Args:
      values: Pulled weights as {variable.ref(): numpy array} (launch/actor.py's
        WeightPuller). The numpy path keeps them as they are and leaves the TF
        variables alone; the TF path assigns them to the variables (without
        `values` it reads its variables directly).
    """
    if self._numpy is not None:
      self._numpy.refresh(values)
      return
    for ref, value in (values or {}).items():
      ref.deref().assign(value)

  def _clip(self, action: np.ndarray) -> np.ndarray:
    return action if self._low is None else np.clip(action, self._low, self._high)

  def act(self, observation: np.ndarray, step_type=None) -> np.ndarray:
    """Greedy (or sampled) actions for the environment."""
    if self._numpy is not None:
      return self._numpy.sample(observation)[0] if self._collect else self._numpy.mode(observation)
    if step_type is None:
      step_type = np.full(len(observation), ts.StepType.MID, np.int32)
    action, _ = self._act(observation, step_type)
    return self._clip(action.numpy())

  def collect(self, observation: np.ndarray,
              step_type: np.ndarray) -> Tuple[np.ndarray, np.ndarray, Dict[str, np.ndarray]]:
    if self._numpy is not None:
      action, info = self._numpy.sample(observation)
      return action, action, info
    action, info = self._act(observation, step_type)
    action = action.numpy()
    return self._clip(action), action, tf.nest.map_structure(lambda t: t.numpy(), info)


class NumpyCategorical:
  """A PPO Categorical policy and its value head in numpy: what the TF collect policy returns.

  Sampling is the Gumbel-max trick (argmax of logits plus Gumbel noise draws
  from softmax(logits)); the mode is the argmax of the logits, as
  tfp.distributions.Categorical's. Policy info matches TF-Agents' PPOPolicy
  with values computed outside train: {'dist_params': {'logits'},
  'value_prediction'}.
  """

  def __init__(self, actor: numpy_mlp.NumpyMlp, value: numpy_mlp.NumpyMlp, dtype, seed: int):
    self._actor, self._value = actor, value
    self._dtype = np.dtype(tf.as_dtype(dtype).as_numpy_dtype)
    self._rng = np.random.default_rng(seed)

  @classmethod
  def of_agent(cls, agent, action_spec, seed: int):
    """The numpy policy of `agent`, or None where only the TF path is exact."""
    # pylint: disable=protected-access
    if not is_discrete(action_spec) or agent._observation_normalizer is not None:
      return None
    actor_layers = agent.actor_net.layers
    if not actor_layers or not isinstance(actor_layers[-1], tf.keras.layers.Lambda):
      return None  # not make_actor_network's Categorical head
    actor = numpy_mlp.NumpyMlp.of_layers(actor_layers[:-1])
    encoder = numpy_mlp.encoding_network_layers(agent._value_net._encoder)
    value = numpy_mlp.NumpyMlp.of_layers([*encoder, agent._value_net._postprocessing_layers])
    if actor is None or value is None or not encoder:
      return None
    return cls(actor, value, action_spec.dtype, seed)

  def refresh(self, values: Optional[Mapping] = None) -> None:
    self._actor.refresh(values)
    self._value.refresh(values)

  def mode(self, observation: np.ndarray) -> np.ndarray:
    return np.argmax(self._actor(observation), axis=-1).astype(self._dtype)

  def sample(self, observation: np.ndarray) -> Tuple[np.ndarray, Dict]:
    logits = self._actor(observation)
    action = np.argmax(logits + self._rng.gumbel(size=logits.shape), axis=-1).astype(self._dtype)
    info = {"dist_params": {"logits": logits},
            "value_prediction": self._value(observation)[:, 0]}
    return action, info
