"""Learner role: trains the DQN agent from Reverb under the configured strategy.

TF-Agents' `Learner` runs `steps_per_call` train steps inside one graph call
(distributing the dataset and `agent.train` over the strategy's replicas);
around it this role pushes weights to the actors, writes summaries,
checkpoints into RUN_DIR/checkpoints and exports policies.
"""

import logging
import math
import tempfile
import time
from typing import Callable, Dict, Optional

import tensorflow as tf
from tf_agents.agents import tf_agent
from tf_agents.train import learner as tfa_learner
from tf_agents.train.utils import train_utils

from reverie.agents import export
from reverie.agents import optimizer
from reverie.agents import replay
from reverie.agents.dqn import agent as dqn_agent
from reverie.agents.dqn import dataset as dqn_dataset
from reverie.launch import contract
from reverie.launch import strategy as strategy_lib
from reverie.launch.checkpoints import LearnerCheckpoints
from reverie.launch.config_schema import Config
from reverie.launch.errors import ReverieError, TrainingFailed
from reverie.launch.run_state import RunState

log = logging.getLogger("reverie.learner")


class LearnerBase:
  """What every agent's learner does around training: weights, summaries, checkpoints, exports.

  Subclasses set `agent`, `train_step`, `strategy`, `run_dir`, `config`,
  `observation_spec` and `pushed_variables` (what actors and evaluators pull)
  and call `_start_outputs(server_address)`; `train_iteration()` returns the
  scalars to write, or None when Reverb had no data. Under multi_worker every
  worker saves and exports (into a scratch `run_dir` but the chief's), and
  only the chief pushes weights.
  """

  # Least seconds between two pushes, and between two writes of the scalars, from the
  # train loop (0: after every call).
  min_push_seconds = 0.0
  min_summary_seconds = 0.0

  def _start_outputs(self, server_address: str) -> None:
    self.chief = strategy_lib.is_chief(self.strategy)
    self.checkpoints = LearnerCheckpoints(self.run_dir.checkpoints, self.agent, self.train_step,
                                          self.config.learner.keep_checkpoints)
    self._push = None  # only the chief pushes: other multi_worker workers make no Reverb client
    if self.chief:
      self._push = replay.weight_pusher(
          server_address, contract.VARIABLES_TABLE,
          {contract.POLICY_KEY: self.pushed_variables, contract.TRAIN_STEP_KEY: self.train_step},
          traced=not isinstance(self.strategy, tf.distribute.TPUStrategy))
    self.summary = tf.summary.create_file_writer(str(self.run_dir.tensorboard("learner")))
    self._pushed_at = -math.inf
    self._unwritten: Optional[Dict[str, float]] = None  # the newest scalars not yet written
    self._window = (time.monotonic(), int(self.train_step.numpy()))  # since the last write
    self.push_weights()

  def push_weights(self) -> None:
    self._pushed_at = time.monotonic()
    if self._push is not None:
      self._push()

  def push_due(self) -> bool:
    """Whether the train loop should push now (`min_push_seconds` since the last push)."""
    return time.monotonic() - self._pushed_at >= self.min_push_seconds

  def write_summaries(self, scalars: Dict[str, float], force: bool = False) -> None:
    """Writes `scalars` and the train steps/s since the last write, at most every
    `min_summary_seconds` unless `force`d; scalars held back are replaced by later ones."""
    now, (since, since_step) = time.monotonic(), self._window
    self._unwritten = scalars
    if not force and now - since < self.min_summary_seconds:
      return
    step = int(self.train_step.numpy())
    with self.summary.as_default(step=step):
      for tag, value in scalars.items():
        tf.summary.scalar(tag, value)
      tf.summary.scalar("learner/steps_per_second", (step - since_step) / max(now - since, 1e-9))
      tf.summary.scalar("learner/num_replicas", self.strategy.num_replicas_in_sync)
    self._unwritten, self._window = None, (now, step)

  def flush_summaries(self) -> None:
    """Writes the scalars a throttled `write_summaries` held back."""
    if self._unwritten is not None:
      self.write_summaries(self._unwritten, force=True)

  def save_checkpoint(self, state: Optional[RunState] = None) -> None:
    """Saves the agent, train step and, from `state`, the run's counters."""
    self.checkpoints.save(state)

  def restore(self) -> Optional[dict]:
    """Restores the newest readable checkpoint (launch/checkpoints.py) and pushes its weights."""
    restored = self.checkpoints.restore_newest()
    if restored is not None:
      self.push_weights()
      self._window = (time.monotonic(), int(self.train_step.numpy()))  # steps/s from here
    return restored

  def export(self, final: bool) -> None:
    """policies/steps/<train_step>/, and on `final` greedy/, collect/ and greedy.tflite."""
    step = int(self.train_step.numpy())
    export.save_policy(self.agent.policy, self.run_dir.policy_at(step), self.train_step)
    if final:  # the newest greedy export is the one just written: copy it, do not trace again
      export.copy_policy(self.run_dir.policy_at(step), self.run_dir.greedy_policy)
      export.save_policy(self.agent.collect_policy, self.run_dir.collect_policy, self.train_step)
      export.save_tflite(self.agent.policy, self.observation_spec, self.run_dir.greedy_tflite)
    log.info("exported policies at train step %d", step)

  def load_weights(self, weights) -> None:
    """Puts back the weights the evaluator scored (when the run stops at its target)."""
    for variable, value in zip(self.pushed_variables, weights):
      variable.assign(value)

  def _check_nan(self, error: tf.errors.InvalidArgumentError) -> None:
    if "Loss is inf or nan" in str(error):
      raise TrainingFailed(
          f"loss is NaN or Inf near train step {int(self.train_step.numpy())}; stopped, the last "
          f"good checkpoint stays in {self.run_dir.checkpoints}") from None


class OneTraceLearner(tfa_learner.Learner):
  """TF-Agents' Learner, cheaper to start.

  - No train step traced on dummy data to create the optimizer's slots: the
    learners build them themselves (and PPOLearner builds its Learner without
    a way to pass that flag).
  - The train loop traces the train step once, without AutoGraph. TF-Agents'
    `_train` traces it twice (once before its AutoGraph loop, to learn the
    loss's shape) and converts it with AutoGraph; that was about half of
    PPO's first policy version (1.6 s) here.
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, run_optimizer_variable_init=False, **kwargs)

  @tf.function(autograph=False)
  def _train(self, iterations, iterator, parallel_iterations):
    def step(i, _):
      return i + 1, self.single_train_step(iterator).loss
    no_loss = self.strategy.run(lambda: tf.constant(0.0))  # the loss's per-replica shape
    _, loss = tf.while_loop(lambda i, _: i < iterations, step, (tf.constant(0), no_loss),
                            parallel_iterations=parallel_iterations)
    # The last step's loss, summed over replicas, as TF-Agents' _train returns it.
    return tf_agent.LossInfo(
        loss=self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None), extra=())


class DqnLearner(LearnerBase):
  """The agent, its dataset and the periodic work around TF-Agents' Learner."""

  # Actors look for new weights at most every 0.05 s (launch/actor.py): pushing after
  # every call (about every 20 ms in a DQN CartPole run here, 1.0-1.3 ms a push) wrote
  # weights that no one read. The scalars' four eager summary writes took about 1.1 ms a
  # call in that run, against 14-19 ms for its 50 train steps.
  min_push_seconds = 0.05
  min_summary_seconds = 0.5

  def __init__(self, config: Config, run_dir: contract.RunDir, server_address: str,
               strategy: tf.distribute.Strategy, time_step_spec, action_spec):
    self.config, self.run_dir, self.strategy = config, run_dir, strategy
    replicas = strategy.num_replicas_in_sync
    if config.learner.batch_size % replicas:
      raise ReverieError(f"learner.batch_size: {config.learner.batch_size} does not split among "
                         f"{replicas} replicas; give a multiple of {replicas}")
    per_replica = config.learner.batch_size // replicas
    log.info("batch size %d: %d per replica on %d replicas", config.learner.batch_size,
             per_replica, replicas)
    self.observation_spec = time_step_spec.observation
    self.prioritized = config.replay.sampler == "prioritized"
    # Prioritized replay: TD errors become item priorities after every train step.
    self._priorities = replay.tf_client(server_address) if self.prioritized else None
    timeout_ms = int(config.replay.rate_limiter_timeout_seconds * 1000)
    if strategy_lib.worker_count(strategy) > 1:
      # A worker whose sample timed out would leave the others inside a collective
      # step: workers wait for data, and the launcher keeps actors collecting until
      # every worker has stopped.
      timeout_ms = -1
    self._dataset_fn = lambda: dqn_dataset.make_dataset(
        server_address, contract.EXPERIENCE_TABLE, action_spec, per_replica, timeout_ms,
        config.agent.n_step_update, config.agent.gamma,
        config.replay.importance_sampling_exponent if self.prioritized else None)
    with strategy.scope():
      self.train_step = train_utils.create_train_step()
      self.agent, self.network = dqn_agent.make_agent(config.agent, time_step_spec, action_spec,
                                                      self.train_step)
      # Adam's slots made directly: TF-Agents' Learner would trace a whole train step
      # on dummy data for them (about 2 s before the actors could start).
      optimizer.create_slots(self.agent._optimizer,  # pylint: disable=protected-access
                             self.network.trainable_variables)
      # TF-Agents' Learner makes root_dir/train/checkpoints even with its checkpointing
      # off; Reverie checkpoints into RUN_DIR/checkpoints itself, so root_dir is scratch.
      self._scratch = tempfile.TemporaryDirectory(prefix="reverie-learner-")
      self.applied_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.learner = OneTraceLearner(
          self._scratch.name, self.train_step, self.agent,
          # No experience_dataset_fn: the Learner would open a second Reverb sampler of
          # its own; every call gets this role's iterator (remade after a timeout).
          checkpoint_interval=-1, summary_interval=0, strategy=strategy,
          use_kwargs_in_agent_train=self.prioritized,  # train(experience=, weights=)
          after_train_strategy_step_fn=tf.autograph.experimental.do_not_convert(
              self._count_applied_step))
    self.iterator = self._new_iterator()
    self.pushed_variables = self.network.variables
    self._start_outputs(server_address)

  def _new_iterator(self):
    dataset_fn = strategy_lib.on_dataset_device(self.strategy, lambda _: self._dataset_fn())
    with self.strategy.scope():
      return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

  def train(self, iterations: int):
    """Runs `iterations` train steps; returns the loss, or None when Reverb had no data."""
    before = [int(c.numpy()) for c in self._counters()]
    applied_before = int(self.applied_steps.numpy())
    try:
      return self.learner.run(iterations=iterations, iterator=self.iterator).loss
    except tf.errors.OutOfRangeError:  # Reverb's rate limiter timed out: no data for a while.
      # In the iteration whose sample failed, the counters' increments (which do
      # not wait for data) still ran; count only the steps that applied gradients.
      applied = int(self.applied_steps.numpy()) - applied_before
      for counter, value in zip(self._counters(), before):
        counter.assign(value + applied)
      self.iterator = self._new_iterator()
      return None
    except tf.errors.InvalidArgumentError as e:
      self._check_nan(e)
      raise

  def train_iteration(self) -> Optional[Dict[str, float]]:
    loss = self.train(self.config.learner.steps_per_call)
    return None if loss is None else {"learner/loss": float(loss)}

  def _counters(self):
    return [self.train_step, self.agent._optimizer.iterations]  # pylint: disable=protected-access

  def _count_applied_step(self, experience, loss_info) -> None:
    with tf.control_dependencies([loss_info.loss]):  # runs only once the step had data
      self.applied_steps.assign_add(1)
    if self._priorities is not None:
      _, sample_info = experience
      keys, priorities = dqn_dataset.item_priorities(sample_info["key"],
                                                     loss_info.extra.td_error)
      self._priorities.update_priorities(contract.EXPERIENCE_TABLE, keys, priorities)


def run_learner(learner: LearnerBase, state: RunState,
                should_stop: Optional[Callable[[], bool]] = None) -> None:
  """Trains until the run stops; pushes weights after a call when `learner.push_due()`, and
  the newest ones when it stops.

  `should_stop` replaces the check of `state` between calls (learner workers
  agree on it with their peers: launch/learner_worker.py).
  """
  if should_stop is None:
    should_stop = lambda: state.stop.is_set() or state.collection_done.is_set()
  if _train_until(learner, state, should_stop):
    learner.push_weights()  # the evaluator scores the newest weights when collection ends
  learner.flush_summaries()


def _train_until(learner: LearnerBase, state: RunState, should_stop: Callable[[], bool]) -> bool:
  """run_learner's loop; returns whether the newest weights are still to be pushed."""
  config = learner.config.learner
  unpushed = False
  next_checkpoint = next_export = int(learner.train_step.numpy())
  next_checkpoint += config.checkpoint_interval_steps
  next_export += config.export_interval_steps
  while not should_stop():
    started, before = time.monotonic(), int(learner.train_step.numpy())
    scalars = learner.train_iteration()
    if scalars is None:
      if not state.stop.is_set():
        log.info("learner: waiting for replay data")
      continue
    step = int(learner.train_step.numpy())
    if not math.isfinite(scalars["learner/loss"]):
      raise TrainingFailed(
          f"loss is {scalars['learner/loss']} at train step {step}; stopped, the last good "
          f"checkpoint stays in {learner.run_dir.checkpoints}")
    state.train_step = step
    state.learner_steps_per_second = (step - before) / (time.monotonic() - started)
    unpushed = not learner.push_due()
    if not unpushed:
      learner.push_weights()
    learner.write_summaries(scalars)
    if step >= next_checkpoint:
      learner.save_checkpoint(state)
      next_checkpoint = step + config.checkpoint_interval_steps
    if step >= next_export:
      learner.export(final=False)
      next_export = step + config.export_interval_steps
  return unpushed
