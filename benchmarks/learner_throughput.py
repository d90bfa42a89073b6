"""DQN learner train steps/s fed from Reverb against the same learner fed from memory.

Two DqnLearners per batch size (launch/learner.py, configs/dqn_cartpole.yaml,
`learner.steps_per_call` train steps per call, one TF thread per op as
`reverie train` sets it):
  reverb     the real data path: agents/dqn/transitions.make_dataset sampling a real
             in-process Reverb server whose experience table (the replay server's
             signature: items of replay.steps_per_item x actor.envs_per_actor
             transitions) is pre-filled to replay.max_size transitions, with a
             MinSize(1) rate limiter so sampling never blocks
  in-memory  the learner's `_dataset_fn` swapped (as benchmarks/learner_replicas.py
             does) for one fixed batch of the same shape, repeated: the train step
             alone, no sampling, no reshaping
The rounds alternate the two; the table quotes medians and the ratio.

    python benchmarks/learner_throughput.py [--batch-sizes 64 256] [--rounds 5] [--seconds 3]

Target (issue 9): from Reverb >= 0.9 x in-memory.
"""

import argparse
import math
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # pylint: disable=g-import-not-at-top
import reverb  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top


def start_server(config, observation_spec, action_spec,
                 one_step_items: bool = True) -> reverb.Server:
  """The replay server's experience table, never rate-limited, filled to replay.max_size.

  Items are written as the actor writes them (`one_step_items`), or as K
  steps each, as actors wrote them before issue 9.
  """
  from reverie.agents import replay  # pylint: disable=g-import-not-at-top
  from reverie.agents.dqn import agent as dqn_agent  # pylint: disable=g-import-not-at-top
  from reverie.agents.dqn import transitions  # pylint: disable=g-import-not-at-top
  from reverie.launch import contract  # pylint: disable=g-import-not-at-top
  lanes, steps = config.actor.envs_per_actor, config.replay.steps_per_item
  signature = transitions.item_signature(observation_spec, action_spec, lanes, steps)
  items = math.ceil(config.replay.max_size / (lanes * steps))
  network = dqn_agent.make_q_network(config.agent, observation_spec, action_spec)
  network.create_variables()
  variables = {contract.POLICY_KEY: network.variables,
               contract.TRAIN_STEP_KEY: tf.Variable(0, dtype=tf.int64)}
  experience = reverb.Table(
      contract.EXPERIENCE_TABLE, sampler=reverb.selectors.Uniform(),
      remover=reverb.selectors.Fifo(), max_size=items,
      rate_limiter=reverb.rate_limiters.MinSize(1), signature=signature)
  server = reverb.Server([experience, replay.variables_table(contract.VARIABLES_TABLE, variables)])
  rng = np.random.default_rng(0)
  with reverb.Client(f"localhost:{server.port}").trajectory_writer(
      num_keep_alive_refs=1 if one_step_items else steps) as writer:
    for _ in range(items):
      rows = [{
          "observation": rng.normal(size=(lanes, 4)).astype(np.float32),
          "action": rng.integers(0, 2, lanes).astype(np.int64),
          "reward": np.ones(lanes, np.float32),
          "discount": np.full(lanes, 0.97, np.float32),
          "next_observation": rng.normal(size=(lanes, 4)).astype(np.float32),
          "valid": rng.random(lanes) < 0.95} for _ in range(steps)]
      if one_step_items:  # as agents/dqn/writer.py writes them: one step of [K, N] columns
        writer.append({k: np.stack([row[k] for row in rows]) for k in transitions.COLUMNS})
        columns = {k: writer.history[k][-1] for k in transitions.COLUMNS}
      else:  # K steps of [N] columns (Reverie before issue 9)
        for row in rows:
          writer.append(row)
        columns = {k: writer.history[k][-steps:] for k in transitions.COLUMNS}
      writer.create_item(contract.EXPERIENCE_TABLE, 1.0, columns)
      writer.flush(block_until_num_items=32)
  return server


def make_learners(config, server: reverb.Server, root: str):
  """{'reverb': learner, 'in-memory': learner}, same config."""
  from tf_agents.specs import tensor_spec  # pylint: disable=g-import-not-at-top
  from tf_agents.trajectories import time_step as ts  # pylint: disable=g-import-not-at-top
  from reverie.agents.dqn import transitions  # pylint: disable=g-import-not-at-top
  from reverie.envs.registry import make_batched_env  # pylint: disable=g-import-not-at-top
  from reverie.launch import contract  # pylint: disable=g-import-not-at-top
  from reverie.launch.learner import DqnLearner  # pylint: disable=g-import-not-at-top
  env = make_batched_env("CartPole-v1", 1)
  time_step_spec = tensor_spec.from_spec(ts.time_step_spec(env.observation_spec))
  action_spec = tensor_spec.from_spec(env.action_spec)
  env.close()
  strategy = tf.distribute.get_strategy()
  learners = {}
  for name in ("reverb", "in-memory"):
    learner = DqnLearner(config, contract.RunDir(tempfile.mkdtemp(dir=root)),
                         f"localhost:{server.port}", strategy, time_step_spec, action_spec)
    if name == "in-memory":
      batch = next(iter(transitions.make_dataset(
          f"localhost:{server.port}", contract.EXPERIENCE_TABLE, config.learner.batch_size,
          rate_limiter_timeout_ms=10_000)))
      learner._dataset_fn = lambda b=batch: tf.data.Dataset.from_tensors(b).repeat()  # pylint: disable=protected-access
      learner.iterator = learner._new_iterator()  # pylint: disable=protected-access
    learners[name] = learner
  return learners


def steps_per_second(learner, steps_per_call: int, seconds: float) -> float:
  if learner.train(steps_per_call) is None:  # warm: traced, prefetch filled
    raise RuntimeError("the learner got no data from Reverb")
  done, started = 0, time.perf_counter()
  while time.perf_counter() - started < seconds:
    learner.train(steps_per_call)
    done += steps_per_call
  return done / (time.perf_counter() - started)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
  args = parser.parse_args()
  from reverie.launch.config import load_config  # pylint: disable=g-import-not-at-top
  from reverie.envs.registry import make_batched_env  # pylint: disable=g-import-not-at-top
  base = load_config("dqn_cartpole", []).config
  tf.config.threading.set_intra_op_parallelism_threads(base.learner.intra_op_threads)
  print(f"# DQN learner train steps/s (configs/dqn_cartpole.yaml: fc {list(base.agent.fc_layer_params)}"
        f", {base.learner.steps_per_call} steps per call, items of {base.replay.steps_per_item} x "
        f"{base.actor.envs_per_actor} transitions), median of {args.rounds} alternating rounds of "
        f"{args.seconds:g} s, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}", flush=True)
  print(f"{'batch':>5} {'reverb':>8} {'in-memory':>9} {'ratio':>6} {'reverb min':>10} "
        f"{'reverb max':>10}", flush=True)
  env = make_batched_env("CartPole-v1", 1)
  with tempfile.TemporaryDirectory(prefix="reverie-bench-") as root:
    for batch_size in args.batch_sizes:
      config = load_config("dqn_cartpole", [f"learner.batch_size={batch_size}"]).config
      server = start_server(config, env.observation_spec, env.action_spec)
      learners = make_learners(config, server, root)
      rates = {name: [] for name in learners}
      for _ in range(args.rounds):
        for name, learner in learners.items():
          rates[name].append(steps_per_second(learner, config.learner.steps_per_call,
                                              args.seconds))
      ours, memory = statistics.median(rates["reverb"]), statistics.median(rates["in-memory"])
      print(f"{batch_size:>5} {ours:>8,.0f} {memory:>9,.0f} {ours / memory:>6.2f} "
            f"{min(rates['reverb']):>10,.0f} {max(rates['reverb']):>10,.0f}", flush=True)
      server.stop()
  env.close()
  print("(train steps per second; ratio = reverb / in-memory, target >= 0.9)")


if __name__ == "__main__":
  main()
