"""Learner train steps/s on one replica against two (MirroredStrategy), same global batch.

    python benchmarks/learner_replicas.py [--rounds 5] [--batch-size 256] [--devices 2]

On a machine without GPUs the two replicas are logical CPUs sharing the same
cores, so no speed-up is expected: the ratio is the cost of replication
(per-replica dispatch and the gradient all-reduce). With GPUs, `--devices`
GPUs are used and the ratio is the speed-up. The learners are Reverie's own
(DqnLearner, PpoLearner) fed from fixed in-memory batches, so Reverb's
sampling is not in the measure. The rounds alternate one and N replicas.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import unittest.mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top


def _split_cpu(devices: int) -> None:
  if not tf.config.list_physical_devices("GPU"):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(devices)])


def _learner(kind: str, strategy, batch: int, root: str):
  from tf_agents.specs import tensor_spec  # pylint: disable=g-import-not-at-top
  from tf_agents.trajectories import time_step as ts  # pylint: disable=g-import-not-at-top
  from reverie.agents.dqn import transitions  # pylint: disable=g-import-not-at-top
  from reverie.agents.ppo import rollouts  # pylint: disable=g-import-not-at-top
  from reverie.envs.registry import make_batched_env  # pylint: disable=g-import-not-at-top
  from reverie.launch import contract  # pylint: disable=g-import-not-at-top
  from reverie.launch.config import load_config  # pylint: disable=g-import-not-at-top
  from reverie.launch.learner import DqnLearner  # pylint: disable=g-import-not-at-top
  from reverie.launch.ppo_learner import PpoLearner  # pylint: disable=g-import-not-at-top
  from reverie.launch.replay_server import start_replay_server  # pylint: disable=g-import-not-at-top

  config = load_config(f"{kind}_cartpole", [f"learner.batch_size={batch}"]).config
  env = make_batched_env("CartPole-v1", 1)
  observation_spec, action_spec = env.observation_spec, env.action_spec
  env.close()
  time_step_spec = tensor_spec.from_spec(ts.time_step_spec(observation_spec))
  run_dir = contract.RunDir(tempfile.mkdtemp(dir=root))
  server = start_replay_server(config, run_dir, None, observation_spec, action_spec)
  address = f"localhost:{server.port}"
  per_replica = batch // strategy.num_replicas_in_sync
  rng = np.random.default_rng(0)
  if kind == "dqn":
    count = 64 * batch
    data = {"observation": rng.normal(size=(count, 4)).astype(np.float32),
            "action": rng.integers(0, 2, count), "reward": rng.normal(size=count).astype(np.float32),
            "discount": np.full(count, 0.99, np.float32),
            "next_observation": rng.normal(size=(count, 4)).astype(np.float32),
            "valid": np.ones(count, bool)}
    learner = DqnLearner(config, run_dir, address, strategy, time_step_spec,
                         tensor_spec.from_spec(action_spec))
    learner._dataset_fn = lambda: tf.data.Dataset.from_tensor_slices(data).repeat().batch(  # pylint: disable=protected-access
        per_replica, drop_remainder=True).map(lambda i: (transitions.to_transition(i), ()))
    learner.iterator = learner._new_iterator()  # pylint: disable=protected-access
    return lambda: learner.train(config.learner.steps_per_call), config.learner.steps_per_call, server

  frames = config.actor.envs_per_actor * config.agent.rollout_steps
  from reverie.agents.ppo import agent as ppo_agent  # pylint: disable=g-import-not-at-top
  acting = ppo_agent.make_acting_agent(config.agent, observation_spec, action_spec)
  item = _ppo_rollout(acting, config, rng)

  def fixed(unused_address, unused_table, agent, unused_version, minibatch, *args, **kwargs):
    del args, kwargs
    steps = rollouts.minibatches(agent, item, minibatch, order=tf.range(frames))
    return tf.data.Dataset.from_tensor_slices(steps).map(lambda s: (s, ())).repeat()  # every version

  with unittest.mock.patch.object(rollouts, "make_dataset", fixed):
    learner = PpoLearner(config, run_dir, address, strategy, time_step_spec,
                         tensor_spec.from_spec(action_spec))
  steps = frames // batch * config.agent.num_epochs
  return lambda: learner.learner.run(), steps, server


def _ppo_rollout(agent, config, rng):
  from tf_agents.trajectories import time_step as ts  # pylint: disable=g-import-not-at-top
  from tf_agents.trajectories import trajectory  # pylint: disable=g-import-not-at-top
  steps, lanes = config.agent.rollout_steps + 1, config.actor.envs_per_actor
  n = steps * lanes
  observation = tf.constant(rng.normal(size=(n, 4)), tf.float32)
  step_type = tf.constant(rng.choice([0, 1, 1, 1, 2], n), tf.int32)
  policy_step = agent.collect_policy.action(
      ts.TimeStep(step_type, tf.zeros(n), tf.ones(n), observation), seed=1)
  flat = trajectory.Trajectory(
      step_type=step_type, observation=observation, action=policy_step.action,
      policy_info=policy_step.info, next_step_type=tf.constant(rng.choice([1, 1, 2], n), tf.int32),
      reward=tf.constant(rng.normal(size=n), tf.float32),
      discount=tf.constant(rng.choice([0.0, 1.0, 1.0], n), tf.float32))
  return tf.nest.map_structure(lambda x: tf.reshape(x, [steps, lanes, *x.shape[1:]]), flat)


def _rate(call, steps: int, seconds: float) -> float:
  call()  # warm: traced
  done, started = 0, time.perf_counter()
  while time.perf_counter() - started < seconds:
    call()
    done += steps
  return done / (time.perf_counter() - started)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
  parser.add_argument("--batch-size", type=int, default=256)
  parser.add_argument("--devices", type=int, default=2)
  args = parser.parse_args()
  _split_cpu(args.devices)
  gpus = len(tf.config.list_physical_devices("GPU"))
  where = f"{gpus} GPUs" if gpus else f"{args.devices} logical CPUs on {os.cpu_count()} cores"
  print(f"# learner steps/s, 1 replica vs {args.devices} ({where}), global batch "
        f"{args.batch_size}, {args.rounds} alternating rounds of {args.seconds:g} s, "
        f"{time.strftime('%Y-%m-%d')}", flush=True)
  print(f"{'agent':<6} {'1 replica':>10} {f'{args.devices} replicas':>11} {'ratio':>6}")
  from reverie.launch import strategy as strategy_lib  # pylint: disable=g-import-not-at-top
  from reverie.launch.config import load_config  # pylint: disable=g-import-not-at-top
  # One strategy object each for the whole process: two MirroredStrategy objects
  # would hand out the same collective keys for different tensors.
  strategies = {1: tf.distribute.get_strategy(), args.devices: strategy_lib.make_strategy(
      load_config("dqn_cartpole", ["strategy.kind=mirrored",
                                   f"strategy.devices={args.devices}"]).config.strategy)}
  with tempfile.TemporaryDirectory(prefix="reverie-bench-") as root:
    for kind in ("dqn", "ppo"):
      learners = {r: _learner(kind, strategies[r], args.batch_size, root)
                  for r in (1, args.devices)}
      rates = {r: [] for r in learners}
      for _ in range(args.rounds):
        for replicas, (call, steps, _) in learners.items():
          rates[replicas].append(_rate(call, steps, args.seconds))
      one, many = (statistics.median(rates[r]) for r in (1, args.devices))
      print(f"{kind:<6} {one:>10.0f} {many:>11.0f} {many / one:>6.2f}", flush=True)
      for _, _, server in learners.values():
        server.stop()
  print("(median train steps/s; ratio = replicas / one)")


if __name__ == "__main__":
  sys.exit(main())
