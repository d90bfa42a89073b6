"""Env steps/s of one Reverie DQN actor against its environment alone and env + policy.

Three paths per lane count, CartPole-v1 (configs/dqn_cartpole.yaml otherwise):
  env            the batched gymnasium vector env (envs/batched.py), random actions
  env+policy     the same env stepped with the actor's EpsilonGreedy policy (epsilon 0.05)
  actor          launch/actor.run_actor itself in a thread: policy, env, n-step
                 accumulator, Reverb writer into a real in-process Reverb server (the
                 experience table's signature; a MinSize(1) rate limiter that never
                 blocks inserts), weight pulls and TensorBoard summaries; meanwhile
                 another thread pushes new weights as a learner would
                 (--push-interval-seconds, 1/30 s: more often than a DQN learner,
                 which pushes after a call of 50 train steps at most every 0.05 s,
                 DqnLearner.min_push_seconds; 0.05 s measured the same, 0.80 against
                 0.80 at 64 lanes, benchmarks/results/actor_throughput.txt)
Each counts lanes x vector steps. The rounds alternate the paths; the table
quotes medians, the ratio of the actor's to env+policy's, and the median of the
paired ratios (each round's actor over the env+policy measured just before it:
this 2-core machine has slow phases of several seconds that a round's paths share).
Then one actor and env + policy run in one process, stepping in turn in short
windows (`interleaved`); their ratio is the "interleaved" column, a second
measure of the same ratio whose two paths are never seconds apart.

    python benchmarks/actor_throughput.py [--lanes 1 16 64 256] [--rounds 5] [--seconds 2]
                                         [--windows 20] [--window-seconds 0.4]
                                         [--push-interval-seconds 0.033]

Targets (issue 9): actor >= 0.8 x env+policy at 64 and 256 lanes; >= 100,000
env steps/s at 256 lanes.
"""

import argparse
import contextlib
import dataclasses
import math
import os
import statistics
import tempfile
import threading
import time
from typing import List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # pylint: disable=g-import-not-at-top
import reverb  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from reverie.agents.dqn import agent as dqn_agent  # pylint: disable=g-import-not-at-top
from reverie.agents.dqn import transitions  # pylint: disable=g-import-not-at-top
from reverie.agents import replay  # pylint: disable=g-import-not-at-top
from reverie.envs.registry import make_batched_env  # pylint: disable=g-import-not-at-top
from reverie.launch import actor as actor_lib  # pylint: disable=g-import-not-at-top
from reverie.launch import contract  # pylint: disable=g-import-not-at-top
from reverie.launch.config import load_config  # pylint: disable=g-import-not-at-top
from reverie.launch.run_state import RunState  # pylint: disable=g-import-not-at-top

_WARMUP_SECONDS = 0.5
_SETTLE_SECONDS = 0.1  # of each interleaved window, not counted


class _CountingEnv:
  """A batched env that counts lanes x vector steps (read from another thread)."""

  def __init__(self, env):
    self._env, self.lane_steps = env, 0

  def __getattr__(self, name):
    return getattr(self._env, name)

  def step(self, actions):
    self.lane_steps += self._env.num_envs
    return self._env.step(actions)


class _GatedEnv(_CountingEnv):
  """A counting env whose `step` waits while the gate (`open`) is shut: the loop parks in it."""

  def __init__(self, env, gate: Optional[threading.Event] = None):
    super().__init__(env)
    self.open, self.parked = gate or threading.Event(), threading.Event()
    self.open.set()
    self.stepper: Optional[int] = None  # the ident of the thread that stepped it, once parked

  def step(self, actions):
    if not self.open.is_set():
      self.stepper = threading.get_ident()
      self.parked.set()
      self.open.wait()
      self.parked.clear()
    return super().step(actions)


def _measure(counter, seconds: float) -> float:
  """Lane steps/s of `counter` over `seconds`, after it has started and warmed up."""
  while counter() == 0:
    time.sleep(0.01)
  time.sleep(_WARMUP_SECONDS)
  start_steps, started = counter(), time.perf_counter()
  time.sleep(seconds)
  return (counter() - start_steps) / (time.perf_counter() - started)


def env_only(lanes: int, seconds: float) -> float:
  env = _CountingEnv(make_batched_env("CartPole-v1", lanes))
  rng = np.random.default_rng(0)
  env.reset(seed=0)
  high = env.action_spec.maximum + 1
  started = time.perf_counter()
  while time.perf_counter() - started < _WARMUP_SECONDS:
    env.step(rng.integers(0, high, lanes))
  env.lane_steps, started = 0, time.perf_counter()
  while time.perf_counter() - started < seconds:
    env.step(rng.integers(0, high, lanes))
  rate = env.lane_steps / (time.perf_counter() - started)
  env.close()
  return rate


class _EnvPolicy:
  """An env stepped with the actor's EpsilonGreedy policy (epsilon 0.05), no actor around it."""

  def __init__(self, config, env):
    self.env = env
    network = dqn_agent.make_q_network(config.agent, env.observation_spec, env.action_spec)
    network.create_variables()
    self._policy = dqn_agent.EpsilonGreedy(network, env.observation_spec, env.action_spec,
                                           seed=0)
    self._policy.refresh()
    self._observation = env.reset(seed=0)

  def step(self) -> None:
    self._observation = self.env.step(self._policy.act(self._observation, 0.05)).observation

  def run(self, seconds: float) -> float:
    """Steps for `seconds`; returns lane steps/s."""
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
      self.step()
      steps += self.env.num_envs
    return steps / (time.perf_counter() - started)


def env_policy(config, lanes: int, seconds: float) -> float:
  path = _EnvPolicy(config, make_batched_env("CartPole-v1", lanes))
  path.run(_WARMUP_SECONDS)
  rate = path.run(seconds)
  path.env.close()
  return rate


def start_server(config) -> reverb.Server:
  """The experience table as the replay server makes it, but with inserts that never block."""
  lanes, steps = config.actor.envs_per_actor, config.replay.steps_per_item
  env = make_batched_env("CartPole-v1", 1)
  signature = transitions.item_signature(env.observation_spec, env.action_spec, lanes, steps,
                                         config.agent.n_step_update)
  network = dqn_agent.make_q_network(config.agent, env.observation_spec, env.action_spec)
  network.create_variables()
  env.close()
  variables = {contract.POLICY_KEY: network.variables,
               contract.TRAIN_STEP_KEY: tf.Variable(0, dtype=tf.int64)}
  experience = reverb.Table(
      contract.EXPERIENCE_TABLE, sampler=reverb.selectors.Uniform(),
      remover=reverb.selectors.Fifo(), max_size=math.ceil(config.replay.max_size / (lanes * steps)),
      rate_limiter=reverb.rate_limiters.MinSize(1), signature=signature)
  server = reverb.Server([experience, replay.variables_table(contract.VARIABLES_TABLE, variables)])
  replay.variable_container(f"localhost:{server.port}", contract.VARIABLES_TABLE).push(variables)
  return server


def _pusher(server: reverb.Server, config, interval_seconds: float, stop: threading.Event,
            gate: threading.Event):
  """A thread that pushes new weights every `interval_seconds` while `gate` is set, as a
  learner would (through the learner's own replay.weight_pusher)."""
  env = make_batched_env("CartPole-v1", 1)
  network = dqn_agent.make_q_network(config.agent, env.observation_spec, env.action_spec)
  network.create_variables()
  env.close()
  step = tf.Variable(0, dtype=tf.int64)
  variables = {contract.POLICY_KEY: network.variables, contract.TRAIN_STEP_KEY: step}
  push_weights = replay.weight_pusher(f"localhost:{server.port}", contract.VARIABLES_TABLE,
                                      variables)

  def push():
    while not stop.wait(interval_seconds):
      if gate.is_set():
        step.assign_add(50)
        push_weights()

  return threading.Thread(target=push, name="bench_pusher", daemon=True)


@contextlib.contextmanager
def _running_actor(config, server: reverb.Server, root: str, push_interval_seconds: float):
  """launch/actor.run_actor in a thread, with a pusher thread when `push_interval_seconds`;
  yields its env (a _GatedEnv, which counts the steps) once it has one. The pusher
  pushes only while the env's gate is open."""
  envs = []
  gate, stop_pushes = threading.Event(), threading.Event()
  pusher = _pusher(server, config, push_interval_seconds, stop_pushes, gate) \
      if push_interval_seconds > 0 else None

  def gated_env(*args, **kwargs):
    envs.append(_GatedEnv(make_batched_env(*args, **kwargs), gate))
    return envs[-1]

  state = RunState(max_env_steps=10**12)
  run_dir = contract.RunDir(tempfile.mkdtemp(dir=root))
  original = actor_lib.make_batched_env
  actor_lib.make_batched_env = gated_env
  errors = []

  def run():
    try:
      actor_lib.run_actor(config, 0, f"localhost:{server.port}", run_dir, state)
    except BaseException as e:  # pylint: disable=broad-except
      errors.append(e)
      raise

  thread = threading.Thread(target=run, name="bench_actor")
  try:
    thread.start()
    if pusher is not None:
      pusher.start()
    deadline = time.monotonic() + 60
    while not envs and not errors and thread.is_alive():
      if time.monotonic() > deadline:
        raise RuntimeError("run_actor made no env through launch/actor.make_batched_env in 60 s")
      time.sleep(0.01)
    if errors:
      raise errors[0]
    yield envs[0]
  finally:
    state.request_stop("benchmark done")
    gate.set()  # an actor parked in its env's step must wake to see the stop
    stop_pushes.set()
    thread.join()
    if pusher is not None:
      pusher.join()
    actor_lib.make_batched_env = original
  if errors:
    raise errors[0]


def actor(config, server: reverb.Server, root: str, seconds: float,
          push_interval_seconds: float = 0.0) -> float:
  """launch/actor.run_actor in a thread; its env counts the steps."""
  with _running_actor(config, server, root, push_interval_seconds) as env:
    return _measure(lambda: env.lane_steps, seconds)


@contextlib.contextmanager
def _running_env_policy(config):
  """env + policy in a thread, on a _GatedEnv (yielded): `interleaved`'s A/A check."""
  path = _EnvPolicy(config, _GatedEnv(make_batched_env("CartPole-v1",
                                                       config.actor.envs_per_actor)))
  stop = threading.Event()

  def run():
    while not stop.is_set():
      path.step()

  thread = threading.Thread(target=run, name="bench_env_policy")
  thread.start()
  try:
    yield path.env
  finally:
    stop.set()
    path.env.open.set()
    thread.join()
    path.env.close()


@dataclasses.dataclass
class Windows:
  """One path's windows in `interleaved_windows`: their rates, and their totals."""
  rates: List[float] = dataclasses.field(default_factory=list)  # lane steps/s of each window
  lane_steps: float = 0.0
  cpu_seconds: float = 0.0  # of the thread that stepped the path
  seconds: float = 0.0

  def add(self, lane_steps: float, cpu_seconds: float, seconds: float) -> None:
    self.rates.append(lane_steps / seconds)
    self.lane_steps += lane_steps
    self.cpu_seconds += cpu_seconds
    self.seconds += seconds


def _thread_cpu_seconds(ident: int) -> float:
  return time.clock_gettime(time.pthread_getcpuclockid(ident))


def interleaved_windows(config, windows: int, seconds: float, running):
  """A path in another thread and env + policy in this one, in `windows` pairs of windows.

  `running` (a context manager: `_running_actor`, or `_running_env_policy` as an
  A/A check) starts the other path; env + policy (as `env_policy`) steps in
  this thread. In turn, one steps while the other waits: the other path parks
  in its env's `step`, and the actor's pusher (gated by the same event) does
  not push, while env + policy steps. Each window of `seconds` is counted after
  `_SETTLE_SECONDS`, so the two windows of a pair lie under a second apart,
  against several seconds (the actor's start and warm-up) between `env_policy`
  and `actor` in a round. Returns the two paths' Windows: (other, env + policy).
  """
  alone = _EnvPolicy(config, make_batched_env("CartPole-v1", config.actor.envs_per_actor))
  other, here = Windows(), Windows()
  with running as gated:
    _measure(lambda: gated.lane_steps, 0.0)  # the other path has started and warmed up
    alone.run(_WARMUP_SECONDS)
    for _ in range(windows):
      gated.open.clear()
      if not gated.parked.wait(60):
        raise RuntimeError("the other path did not park in its env's step within 60 s")
      alone.run(_SETTLE_SECONDS)
      cpu, started = time.thread_time(), time.perf_counter()
      rate = alone.run(seconds)
      took = time.perf_counter() - started
      here.add(rate * took, time.thread_time() - cpu, took)
      gated.open.set()
      time.sleep(_SETTLE_SECONDS)
      steps, cpu = gated.lane_steps, _thread_cpu_seconds(gated.stepper)
      started = time.perf_counter()
      time.sleep(seconds)
      other.add(gated.lane_steps - steps, _thread_cpu_seconds(gated.stepper) - cpu,
                time.perf_counter() - started)
  alone.env.close()
  return other, here


def rate_ratio(other: Windows, alone: Windows) -> float:
  """The interleaved ratio: the two paths' mean rates over all windows (single pairs of
  0.5 s windows ranged from 0.6 to 1.3 here)."""
  return statistics.mean(other.rates) / statistics.mean(alone.rates)


def interleaved(config, windows: int, seconds: float, running) -> float:
  """Env steps/s of a path in another thread over env + policy's (`interleaved_windows`)."""
  return rate_ratio(*interleaved_windows(config, windows, seconds, running))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lanes", type=int, nargs="+", default=[1, 16, 64, 256])
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
  parser.add_argument("--windows", type=int, default=20,
                      help="interleaved pairs of windows per lane count (0: none)")
  parser.add_argument("--window-seconds", type=float, default=0.4, help="per interleaved window")
  parser.add_argument("--push-interval-seconds", type=float, default=1 / 30,
                      help="a thread pushes new weights this often, as the learner of a DQN "
                           "CartPole run may (it pushes at most every 0.05 s); 0 = no pushes")
  parser.add_argument("--set", action="append", default=[],
                      help="extra config overrides (KEY=VALUE), "
                           "e.g. actor.weight_update_interval_steps")
  args = parser.parse_args()
  print(f"# one DQN actor (configs/dqn_cartpole.yaml, CartPole-v1), env steps/s, median of "
        f"{args.rounds} alternating rounds of {args.seconds:g} s, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d')}; weights pushed every {args.push_interval_seconds:g} s"
        + (f"; --set {' '.join(args.set)}" if args.set else ""),
        flush=True)
  print(f"{'lanes':>5} {'env':>9} {'env+policy':>10} {'actor':>9} {'actor/env+pol':>13} "
        f"{'paired':>6} {'interleaved':>11} {'A/A':>5} {'actor min':>9} {'actor max':>9}",
        flush=True)
  with tempfile.TemporaryDirectory(prefix="reverie-bench-") as root:
    for lanes in args.lanes:
      config = load_config("dqn_cartpole", [*args.set, f"actor.envs_per_actor={lanes}"]).config
      server = start_server(config)
      rates = {"env": [], "env+policy": [], "actor": []}
      for _ in range(args.rounds):
        rates["env"].append(env_only(lanes, args.seconds))
        rates["env+policy"].append(env_policy(config, lanes, args.seconds))
        rates["actor"].append(actor(config, server, root, args.seconds,
                                    args.push_interval_seconds))
      together = check = math.nan
      if args.windows:
        together = interleaved(config, args.windows, args.window_seconds,
                               _running_actor(config, server, root, args.push_interval_seconds))
        check = interleaved(config, args.windows, args.window_seconds,
                            _running_env_policy(config))
      server.stop()
      env, policy, ours = (statistics.median(rates[k]) for k in ("env", "env+policy", "actor"))
      paired = statistics.median(a / p for a, p in zip(rates["actor"], rates["env+policy"]))
      print(f"{lanes:>5} {env:>9,.0f} {policy:>10,.0f} {ours:>9,.0f} {ours / policy:>13.2f} "
            f"{paired:>6.2f} {together:>11.2f} {check:>5.2f} {min(rates['actor']):>9,.0f} "
            f"{max(rates['actor']):>9,.0f}", flush=True)
  print("(lanes x vector steps per second; actor/env+policy of the medians, paired = median of "
        "each round's actor / env+policy; interleaved = actor / env+policy in "
        f"{args.windows} pairs of {args.window_seconds:g} s windows, one path stepping while the "
        "other waits (interleaved()); A/A = the same with env + policy in place of the actor "
        "(1.00 but for this machine's noise); targets: actor/env+policy >= 0.8 at 64 and 256 "
        "lanes, actor >= 100,000 at 256 lanes)")


if __name__ == "__main__":
  main()
