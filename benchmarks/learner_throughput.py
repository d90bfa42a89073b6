"""DQN and PPO learner train steps/s fed from Reverb against the same learner fed from memory.

Two DqnLearners per batch size (launch/learner.py, configs/dqn_cartpole.yaml,
`learner.steps_per_call` train steps per call, one TF thread per op as
`reverie train` sets it):
  reverb     the real data path: agents/dqn/dataset.make_dataset sampling a real
             in-process Reverb server whose experience table (the replay server's
             signature: items of replay.steps_per_item x actor.envs_per_actor
             transitions) is pre-filled to replay.max_size transitions, with a
             MinSize(1) rate limiter so sampling never blocks
  in-memory  the learner's `_dataset_fn` swapped (as benchmarks/learner_replicas.py
             does) for one fixed batch of the same shape, repeated: the train step
             alone, no sampling, no reshaping
Two PpoLearners per batch size (launch/ppo_learner.py, configs/ppo_cartpole.yaml:
`agent.num_epochs` passes over each policy version's minibatches per call):
  reverb     the real data path: each version's rollout sampled from a real in-process
             Reverb queue (the replay server's tables, made deep enough to hold every
             rollout of the measurement, written beforehand with a version the learner
             never passes), GAE and minibatches made in the dataset (and the normalizer
             queue read, in configs with normalizers; ppo_cartpole has none)
  in-memory  the learner's iterators swapped for one fixed minibatch (and normalizer
             batch) of the same shapes, repeated: the train step alone
The rounds alternate the two; the table quotes medians, their ratio, and the median
of the paired ratios (each Reverb round over the in-memory round right after it).
This 2-core machine has slow phases of several seconds in which both feeds drop
by about a quarter alike (the in-memory DQN learner alone at batch 64, 50 rounds
of 2 s: 3.8-4.9k train steps/s, and 3.4k in three of the last four); the ratio of
medians then swings with how many slow rounds each column drew, while a paired
ratio compares two rounds measured seconds apart.

    python benchmarks/learner_throughput.py [--agents dqn ppo] [--batch-sizes 64 256]
        [--rounds 5] [--seconds 3]

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


def start_server(config, observation_spec, action_spec) -> reverb.Server:
  """The replay server's experience table, never rate-limited, filled to replay.max_size.

  Items are written as the actor writes them: one step of the item's two
  columns of raw rows (agents/dqn/transitions.py), one whole item; a few
  steps in a hundred end an episode or start one.
  """
  from reverie.agents import replay  # pylint: disable=g-import-not-at-top
  from reverie.agents.dqn import agent as dqn_agent  # pylint: disable=g-import-not-at-top
  from reverie.agents.dqn import transitions  # pylint: disable=g-import-not-at-top
  from reverie.launch import contract  # pylint: disable=g-import-not-at-top
  lanes, steps = config.actor.envs_per_actor, config.replay.steps_per_item
  n_step = config.agent.n_step_update
  signature = transitions.item_signature(observation_spec, action_spec, lanes, steps, n_step)
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
      num_keep_alive_refs=1) as writer:
    for _ in range(items):
      shape = (steps + n_step - 1, lanes)
      ended = rng.random(shape) < 0.03
      replay.write_item(writer, transitions.make_item(
          rng.normal(size=(shape[0] + 1, lanes, 4)).astype(np.float32),
          rng.integers(0, 2, shape), reward=np.ones(shape, np.float32), ended=ended,
          terminated=ended & (rng.random(shape) < 0.5), started=rng.random(shape) < 0.03),
          [contract.EXPERIENCE_TABLE])
      writer.flush(block_until_num_items=32)
  return server


def make_learners(config, server: reverb.Server, root: str):
  """{'reverb': learner, 'in-memory': learner}, same config."""
  from tf_agents.specs import tensor_spec  # pylint: disable=g-import-not-at-top
  from tf_agents.trajectories import time_step as ts  # pylint: disable=g-import-not-at-top
  from reverie.agents.dqn import dataset as dqn_dataset  # pylint: disable=g-import-not-at-top
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
      batch = next(iter(dqn_dataset.make_dataset(
          f"localhost:{server.port}", contract.EXPERIENCE_TABLE, action_spec,
          config.learner.batch_size, 10_000, config.agent.n_step_update, config.agent.gamma)))
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


# A version no learner reaches in a benchmark: every prepared rollout stays current.
_FUTURE_VERSION = 2**62


def start_ppo_server(config, observation_spec, action_spec, depth: int):
  """(server, item signature, queue names): PPO's queues and variables table as the replay
  server makes them, `depth` items deep."""
  from reverie.agents import replay  # pylint: disable=g-import-not-at-top
  from reverie.agents.ppo import agent as ppo_agent  # pylint: disable=g-import-not-at-top
  from reverie.agents.ppo import rollouts  # pylint: disable=g-import-not-at-top
  from reverie.launch import contract  # pylint: disable=g-import-not-at-top
  from reverie.launch.config_schema import ppo_normalized  # pylint: disable=g-import-not-at-top
  agent = ppo_agent.make_acting_agent(config.agent, observation_spec, action_spec)
  signature = rollouts.item_signature(agent, config.actor.envs_per_actor,
                                      config.agent.rollout_steps)
  tables = contract.all_ppo_tables(1, ppo_normalized(config))
  queues = [reverb.Table.queue(name, max_size=depth, signature=signature) for name in tables]
  variables = {contract.POLICY_KEY: ppo_agent.policy_variables(agent),
               contract.TRAIN_STEP_KEY: tf.Variable(0, dtype=tf.int64)}
  server = reverb.Server([*queues, replay.variables_table(contract.VARIABLES_TABLE, variables)])
  return server, signature, tables


def fill_ppo_queues(server: reverb.Server, signature, tables, count: int, rng) -> None:
  """Writes `count` random CartPole-shaped rollouts into the PPO queues `tables`, as actors do."""
  from reverie.agents import replay  # pylint: disable=g-import-not-at-top
  with reverb.Client(f"localhost:{server.port}").trajectory_writer(1) as writer:
    for _ in range(count):
      replay.write_item(writer, {"trajectory": random_rollout(signature, rng),
                                 "version": np.int64(_FUTURE_VERSION)}, tables)
      writer.flush(block_until_num_items=32)


def random_rollout(signature, rng):
  """A CartPole-shaped rollout ([T+1, N, ...] columns) of random observations and actions."""
  from tf_agents.trajectories import time_step as ts  # pylint: disable=g-import-not-at-top
  spec = signature["trajectory"]
  shape = lambda s: s.shape.as_list()
  normal = lambda s: rng.normal(size=shape(s)).astype(s.dtype.as_numpy_dtype)
  mid = np.full(shape(spec.step_type), ts.StepType.MID, spec.step_type.dtype.as_numpy_dtype)
  return spec._replace(
      step_type=mid, next_step_type=mid, observation=normal(spec.observation),
      action=rng.integers(0, 2, shape(spec.action)).astype(spec.action.dtype.as_numpy_dtype),
      policy_info=tf.nest.map_structure(normal, spec.policy_info),
      reward=np.ones(shape(spec.reward), np.float32),
      discount=np.ones(shape(spec.discount), np.float32))


def make_ppo_learners(config, server: reverb.Server, signature, root: str, time_step_spec,
                      action_spec, rng):
  """{'reverb': learner, 'in-memory': learner}, same config."""
  from reverie.agents.ppo import rollouts  # pylint: disable=g-import-not-at-top
  from reverie.launch import contract  # pylint: disable=g-import-not-at-top
  from reverie.launch.config_schema import ppo_normalized  # pylint: disable=g-import-not-at-top
  from reverie.launch.ppo_learner import PpoLearner  # pylint: disable=g-import-not-at-top
  address = f"localhost:{server.port}"
  learners = {}
  for name in ("reverb", "in-memory"):
    learner = PpoLearner(config, contract.RunDir(tempfile.mkdtemp(dir=root)), address,
                         tf.distribute.get_strategy(), time_step_spec, action_spec)
    if name == "in-memory":
      # One minibatch (and normalizer batch) of a random rollout, made as the dataset makes them.
      # (This learner's own Reverb sampler holds at most one queued rollout, never read.)
      item = tf.nest.map_structure(tf.constant, random_rollout(signature, rng))
      batch = config.learner.batch_size
      first = lambda steps: tf.nest.map_structure(lambda x: x[0], steps)
      fixed = lambda steps: iter(tf.data.Dataset.from_tensors((first(steps), ())).repeat())
      learner.learner._train_iterator = fixed(rollouts.minibatches(  # pylint: disable=protected-access
          learner.agent, item, batch))
      if ppo_normalized(config):
        learner.learner._normalization_iterator = fixed(rollouts.minibatches(  # pylint: disable=protected-access
            learner.agent, item, batch, advantages=False))
    learners[name] = learner
  return learners


def ppo_steps_per_second(learner, seconds: float) -> float:
  """Train steps/s over whole policy versions (num_samples x num_epochs steps each)."""
  if learner.train_iteration() is None:  # warm: traced
    raise RuntimeError("the PPO learner got no rollout")
  before, started = int(learner.train_step.numpy()), time.perf_counter()
  while time.perf_counter() - started < seconds:
    learner.train_iteration()
  return (int(learner.train_step.numpy()) - before) / (time.perf_counter() - started)


def _table(title: str, rows) -> None:
  print(title, flush=True)
  print(f"{'batch':>5} {'reverb':>8} {'in-memory':>9} {'ratio':>6} {'paired':>6} "
        f"{'reverb min':>10} {'reverb max':>10}", flush=True)
  for batch_size, rates in rows:
    ours, memory = statistics.median(rates["reverb"]), statistics.median(rates["in-memory"])
    paired = statistics.median(r / m for r, m in zip(rates["reverb"], rates["in-memory"]))
    print(f"{batch_size:>5} {ours:>8,.0f} {memory:>9,.0f} {ours / memory:>6.2f} {paired:>6.2f} "
          f"{min(rates['reverb']):>10,.0f} {max(rates['reverb']):>10,.0f}", flush=True)
  print("(train steps per second; ratio = reverb / in-memory (medians); paired = median of each "
        "round's reverb / in-memory; target >= 0.9)", flush=True)


def _dqn_rows(args, env, root):
  from reverie.launch.config import load_config  # pylint: disable=g-import-not-at-top
  for batch_size in args.batch_sizes:
    config = load_config("dqn_cartpole", [f"learner.batch_size={batch_size}"]).config
    server = start_server(config, env.observation_spec, env.action_spec)
    learners = make_learners(config, server, root)
    rates = {name: [] for name in learners}
    for _ in range(args.rounds):
      for name, learner in learners.items():
        rates[name].append(steps_per_second(learner, config.learner.steps_per_call,
                                            args.seconds))
    server.stop()
    yield batch_size, rates


def _ppo_rows(args, env, root):
  from tf_agents.specs import tensor_spec  # pylint: disable=g-import-not-at-top
  from tf_agents.trajectories import time_step as ts  # pylint: disable=g-import-not-at-top
  from reverie.launch.config import load_config  # pylint: disable=g-import-not-at-top
  time_step_spec = tensor_spec.from_spec(ts.time_step_spec(env.observation_spec))
  action_spec = tensor_spec.from_spec(env.action_spec)
  rng = np.random.default_rng(0)
  for batch_size in args.batch_sizes:
    config = load_config("ppo_cartpole", [f"learner.batch_size={batch_size}"]).config
    # Rollouts for a round at up to 400 versions/s (about 5x what this machine trains),
    # written before each Reverb round; a round that runs dry stops the benchmark.
    per_round = int(400 * args.seconds) + 2
    server, signature, tables = start_ppo_server(config, env.observation_spec,
                                                 env.action_spec, depth=per_round + 1)
    learners = make_ppo_learners(config, server, signature, root, time_step_spec, action_spec, rng)
    rates = {name: [] for name in learners}
    client = server.localhost_client()
    for _ in range(args.rounds):
      for name, learner in learners.items():
        if name == "reverb":
          fill_ppo_queues(server, signature, tables, per_round, rng)
        rates[name].append(ppo_steps_per_second(learner, args.seconds))
        if name == "reverb":
          if not client.server_info()[tables[0]].current_size:  # the training queue
            raise RuntimeError("the Reverb-fed PPO learner ran out of rollouts: write more per round")
          for table in tables:
            client.reset(table)
    server.stop()
    yield batch_size, rates


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--agents", nargs="+", choices=["dqn", "ppo"], default=["dqn", "ppo"])
  parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
  args = parser.parse_args()
  from reverie.launch.config import load_config  # pylint: disable=g-import-not-at-top
  from reverie.envs.registry import make_batched_env  # pylint: disable=g-import-not-at-top
  dqn, ppo = load_config("dqn_cartpole", []).config, load_config("ppo_cartpole", []).config
  tf.config.threading.set_intra_op_parallelism_threads(dqn.learner.intra_op_threads)
  rounds = (f"median of {args.rounds} alternating rounds of {args.seconds:g} s, "
            f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
  env = make_batched_env("CartPole-v1", 1)
  with tempfile.TemporaryDirectory(prefix="reverie-bench-") as root:
    if "dqn" in args.agents:
      _table(f"# DQN learner train steps/s (configs/dqn_cartpole.yaml: fc "
             f"{list(dqn.agent.fc_layer_params)}, {dqn.learner.steps_per_call} steps per call, "
             f"items of {dqn.replay.steps_per_item} x {dqn.actor.envs_per_actor} transitions), "
             f"{rounds}", list(_dqn_rows(args, env, root)))
    if "ppo" in args.agents:
      _table(f"# PPO learner train steps/s (configs/ppo_cartpole.yaml: fc "
             f"{list(ppo.agent.actor_fc_layers)} actor and value, "
             f"{ppo.actor.envs_per_actor * ppo.agent.rollout_steps} env steps per version, "
             f"{ppo.agent.num_epochs} epochs), {rounds}", list(_ppo_rows(args, env, root)))
  env.close()


if __name__ == "__main__":
  main()
