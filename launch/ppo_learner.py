"""PPO learner role: trains on the current policy version only, then pushes the next one.

Every iteration TF-Agents' PPOLearner reads one rollout per actor from the
training queue (and, with normalizers on, the same rollouts from the
normalization queue to update them), runs `agent.num_epochs` passes of minibatches,
and returns. Rollouts of an older version than allowed are dropped on the way
in and counted (`replay/dropped_stale`). The learner then raises the oldest
version it accepts and pushes the new weights, tagged with its train step:
actors wait for that version before they collect again.
"""

import logging
import tempfile
import time
import unittest.mock
from typing import Dict, List, Optional

import tensorflow as tf
from tf_agents.agents.ppo import ppo_utils
from tf_agents.train import ppo_learner
from tf_agents.train.utils import train_utils
from tf_agents.trajectories import time_step as ts

from reverie.agents import optimizer
from reverie.agents.ppo import agent as ppo_agent
from reverie.agents.ppo import rollouts
from reverie.launch import contract
from reverie.launch import strategy as strategy_lib
from reverie.launch.config_schema import Config, ppo_frames_per_version, ppo_normalized
from reverie.launch.errors import ReverieError
from reverie.launch.learner import LearnerBase, OneTraceLearner

log = logging.getLogger("reverie.learner")
no_autograph = tf.autograph.experimental.do_not_convert

_LOSS_METRICS = ("policy_loss", "value_loss", "clip_fraction")  # means over a version's minibatches
_POLICY_METRICS = ("entropy", "approx_kl")  # after a version's last update


class _StreamingPPOLearner(ppo_learner.PPOLearner):
  """TF-Agents' PPOLearner reading one pipeline for the whole run, traced without AutoGraph.

  - TF-Agents remakes its input pipeline, and so a Reverb sampler, on every
    call; at batch 256 that cost about 0.1 of the learner's train steps
    (learner_throughput.py: 0.88 of in-memory, 0.96 with one pipeline).
  - AutoGraph converting the dataset functions and the normalizer update
    (and the nest utilities it calls) took about 0.5 s of the learner's
    start here; they are plain TF.
  - With normalizers off there is no normalization queue to read.
  Minibatches come from the experience dataset (minibatch_size None).
  """

  def _create_datasets(self, strategy):
    """Each call's `num_samples` minibatches, `num_epochs` times in the same order, as TF-Agents'.

    The experience dataset is an endless stream of minibatches; each
    version's `num_samples` are grouped and repeated, where TF-Agents takes,
    caches and repeats them in a pipeline made anew for every call.
    """
    assert not self._minibatch_size, "PpoLearner's minibatches come from its dataset"

    def versions(_):  # called once per input pipeline, in Python
      one_version = no_autograph(lambda steps, info: tf.data.Dataset.from_tensor_slices(
          (steps, info)).repeat(self._num_epochs))
      return self._experience_dataset_fn().batch(self._num_samples).flat_map(one_version)

    self._normalization_iterator = None  # normalizers off: no normalization queue
    if self._normalization_dataset_fn is not None:
      self._normalization_iterator = iter(self._normalization_dataset_fn())
    with strategy.scope():
      if strategy.num_replicas_in_sync > 1:
        self._train_dataset = strategy.distribute_datasets_from_function(versions)
      else:
        self._train_dataset = versions(None)
      self._train_iterator = iter(self._train_dataset)

  def _update_normalizers(self, iterator):
    """Each of the version's rollouts updates the observation and reward normalizers.

    Returns the frame count, as TF-Agents' does (0 without normalizers: only
    PPOLearner's own minibatching, unused here, reads it).
    """
    return 0 if iterator is None else self._traced_update_normalizers(iterator)

  @tf.function(autograph=False)
  def _traced_update_normalizers(self, iterator):
    frames = tf.constant(0, tf.int32)
    for _ in range(self._num_samples):
      trajectory, _ = next(iterator)
      self._agent.update_observation_normalizer(trajectory.observation)
      self._agent.update_reward_normalizer(trajectory.reward)
      frames += tf.size(trajectory.reward)
    return frames


class PpoLearner(LearnerBase):
  """PPOClipAgent trained by TF-Agents' PPOLearner on versioned rollouts from Reverb."""

  def __init__(self, config: Config, run_dir: contract.RunDir, server_address: str,
               strategy: tf.distribute.Strategy, time_step_spec, action_spec):
    self.config, self.run_dir, self.strategy = config, run_dir, strategy
    replicas = strategy.num_replicas_in_sync
    batch = config.learner.batch_size
    if batch % replicas:
      raise ReverieError(f"learner.batch_size: {batch} does not split among {replicas} replicas; "
                         f"give a multiple of {replicas}")
    per_replica = batch // replicas
    frames = ppo_frames_per_version(config)
    log.info("batch size %d: %d per replica on %d replicas; %d env steps per policy version",
             batch, per_replica, replicas, frames)
    # Under multi_worker each worker reads its own queues (contract.ppo_tables) and
    # trains on its share of every rollout's lanes; its normalizers see all lanes,
    # so they stay the same on every worker.
    worker, workers = strategy_lib.worker_index(strategy), strategy_lib.worker_count(strategy)
    lanes_per_worker = config.actor.envs_per_actor // workers
    lanes = slice(worker * lanes_per_worker, (worker + 1) * lanes_per_worker)
    num_samples = frames // workers // per_replica  # minibatches of this worker per version
    train_table, normalization_table = contract.ppo_tables(worker, workers, ppo_normalized(config))
    self.observation_spec = time_step_spec.observation
    agent_config = config.agent
    with strategy.scope():
      self.train_step = train_utils.create_train_step()
      versions = -(-config.run.max_env_steps // frames)
      updates_per_version = (frames // per_replica) * agent_config.num_epochs // replicas
      self.agent = ppo_agent.make_agent(agent_config, time_step_spec, action_spec,
                                        self.train_step, seed=config.seed,
                                        total_updates=versions * updates_per_version)
      self.min_version = tf.Variable(0, dtype=tf.int64, trainable=False)
      self.dropped = tf.Variable(0, dtype=tf.int64, trainable=False)
      self._sums = tf.Variable(tf.zeros(len(_LOSS_METRICS)), trainable=False,
                               aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self._count = tf.Variable(0.0, trainable=False,
                                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self._policy_stats = tf.Variable(tf.zeros(len(_POLICY_METRICS)), trainable=False,
                                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      # PPOLearner.run's train steps per version on each replica.
      self._steps_per_version = num_samples * agent_config.num_epochs // (replicas // workers)
      # TF-Agents' Learner makes root_dir/train/checkpoints even with its checkpointing
      # off; Reverie checkpoints into RUN_DIR/checkpoints itself, so root_dir is scratch.
      self._scratch = tempfile.TemporaryDirectory(prefix="reverie-learner-")
      # Adam's slots made directly: PPOLearner's Learner would trace a train step
      # on dummy data for them (seconds before the first rollout is read).
      optimizer.create_slots(
          self.agent._optimizer,  # pylint: disable=protected-access
          self.agent._actor_net.trainable_weights  # pylint: disable=protected-access
          + self.agent._value_net.trainable_weights)  # pylint: disable=protected-access
      # Minibatches come shuffled out of the dataset (agents/ppo/rollouts.py), so
      # PPOLearner runs without its own minibatching: num_samples minibatches
      # per version, num_epochs passes over them.
      on_device = lambda fn: strategy_lib.on_dataset_device(strategy, fn)
      with unittest.mock.patch.object(ppo_learner.learner, "Learner", OneTraceLearner):
        self.learner = _StreamingPPOLearner(
            self._scratch.name, self.train_step, self.agent,
            experience_dataset_fn=on_device(lambda: rollouts.make_dataset(
                server_address, train_table, self.agent, self.min_version,
                per_replica, self.dropped, lanes=lanes if workers > 1 else None)),
            normalization_dataset_fn=on_device(lambda: rollouts.make_dataset(
                server_address, normalization_table, self.agent, self.min_version,
                frames // num_samples, advantages=False)) if normalization_table else None,
            num_samples=num_samples, num_epochs=agent_config.num_epochs,
            minibatch_size=None,
            after_train_strategy_step_fn=no_autograph(self._accumulate_metrics),
            checkpoint_interval=-1, summary_interval=0, strategy=strategy)
      # PPOLearner divides its steps per version among all replicas; each
      # worker's pipeline feeds only this worker's own.
      self.learner.num_replicas = replicas // workers
    self._versions: List[int] = [0]  # train steps of the pushed versions, newest last
    self._trained = False  # whether a version was trained (start-up time goes to the log once)
    self.pushed_variables = ppo_agent.policy_variables(self.agent)
    self._start_outputs(server_address)

  def restore(self) -> Optional[dict]:
    """As LearnerBase.restore; rollouts older than the restored version are stale."""
    restored = super().restore()
    if restored is not None:
      self._versions = [restored["train_step"]]
      self.min_version.assign(restored["train_step"])
    return restored

  def train_iteration(self) -> Optional[Dict[str, float]]:
    """One policy version: epochs over every actor's rollout; then the next version is accepted."""
    self._sums.assign(tf.zeros(len(_LOSS_METRICS)))
    self._count.assign(0.0)
    self._policy_stats.assign(tf.zeros(len(_POLICY_METRICS)))
    started = time.monotonic()
    try:
      loss = float(self.learner.run().loss)
    except tf.errors.InvalidArgumentError as e:
      if rollouts.STOP_MESSAGE in str(e):  # the launcher ended the wait: the run stopped
        return None
      self._check_nan(e)
      raise
    step = int(self.train_step.numpy())
    if not self._trained:
      self._trained = True
      log.info("first policy version trained in %.2f s (tracing and the first rollout's wait "
               "included)", time.monotonic() - started)
    self._versions = (self._versions + [step])[-(self.config.agent.max_policy_lag_versions + 1):]
    self.min_version.assign(self._versions[0])  # before the push: no newer data exists yet
    means = (self._sums / tf.maximum(self._count, 1.0)).numpy()
    scalars = {"learner/loss": loss, "replay/dropped_stale": float(self.dropped.numpy())}
    scalars.update({f"learner/{name}": float(v) for name, v in zip(_LOSS_METRICS, means)})
    scalars.update({f"learner/{name}": float(v)
                    for name, v in zip(_POLICY_METRICS, self._policy_stats.numpy())})
    return scalars

  def _accumulate_metrics(self, sample, loss_info) -> None:
    """After each update: its losses and clip fraction, summed over the version.

    After the version's last update, on its last minibatch: the new policy's
    entropy and approx_kl, the k3 estimator E[(r - 1) - log r] with
    r = pi_new / pi_old over the non-boundary steps (PPOClipAgent computes
    neither): how far the version moved the policy from the one that acted.
    Once a version, because the extra pass of both networks they take cost a
    fifth of PPO CartPole's train steps when it ran after every update
    (benchmarks/learner_throughput.py: 2,488-2,609 against 3,150-3,288 steps/s).
    """
    extra = loss_info.extra
    self._sums.assign_add(tf.stack([tf.cast(extra.policy_gradient_loss, tf.float32),
                                    tf.cast(extra.value_estimation_loss, tf.float32),
                                    tf.cast(extra.clip_fraction, tf.float32)]))
    count = self._count.assign_add(1.0)
    # Zeros before the last update, so the sum is the last update's (no variable is
    # written inside the cond: under several replicas that would sync inside control flow).
    self._policy_stats.assign_add(tf.cond(count >= self._steps_per_version,
                                          lambda: self._new_policy_stats(sample),
                                          lambda: tf.zeros(len(_POLICY_METRICS))))

  def _new_policy_stats(self, sample) -> tf.Tensor:
    """[entropy, approx_kl] of the updated policy on a minibatch's non-boundary steps."""
    experience, _ = sample  # (minibatch of [B, 1] steps, sample info)
    flat = tf.nest.map_structure(lambda x: tf.reshape(x, [-1, *x.shape[2:]]), experience)
    time_step = ts.TimeStep(flat.step_type, flat.reward, flat.discount, flat.observation)
    new = self.agent.collect_policy.distribution(time_step).action
    old = ppo_utils.distribution_from_spec(
        self.agent._action_distribution_spec,  # pylint: disable=protected-access
        flat.policy_info["dist_params"], legacy_distribution_network=False)
    log_ratio = new.log_prob(flat.action) - old.log_prob(flat.action)
    valid = tf.cast(~flat.is_boundary(), tf.float32)
    count = tf.maximum(tf.reduce_sum(valid), 1.0)
    mean = lambda x: tf.reduce_sum(x * valid) / count
    return tf.stack([mean(new.entropy()), mean(tf.exp(log_ratio) - 1.0 - log_ratio)])
