"""Where one DQN actor's env steps/s go, against env + policy alone (issue 9's actor target).

Two tables per lane count, CartPole-v1 (configs/dqn_cartpole.yaml otherwise):

1. `actor_throughput.interleaved_windows` for four versions of the other path, each
   against env + policy stepping in this thread, in turn:
     actor        the benchmark's actor: Reverb writes, weight pulls, a thread
                  pushing weights every --push-interval-seconds
     no pulls     the same actor never looking for new weights
     no weights   no pulls and no pushes: Reverb writes and the actor's books only
     A/A          env + policy itself in the other thread (1.00 but for noise)
   Columns: the rate ratio; the ratio of CPU per vector step of the two paths'
   threads; the share of the other path's windows its thread was on a CPU
   (the rest it waited: for the GIL, or on Reverb). Medians over --calls.
2. The actor's own work per vector step, each part timed alone in this thread
   (thread CPU) on 2,048 recorded vector steps, against env + policy's CPU per
   vector step measured in the same invocation: EpisodeStats.add, the n-step
   rows (NStepBlocks.add), the rows with Reverb items and flushes
   (ReplayWriter into the real server), and the loop's stop and weight checks.

    python benchmarks/actor_breakdown.py [--lanes 64 256] [--calls 3] [--windows 20]

Linux or another POSIX system (per-thread CPU clocks).
"""

import argparse
import os
import statistics
import tempfile
import time

import actor_throughput as bench  # pylint: disable=g-import-not-at-top
import reverb  # pylint: disable=g-import-not-at-top

from reverie.agents.dqn import transitions  # pylint: disable=g-import-not-at-top
from reverie.agents.dqn.writer import ReplayWriter  # pylint: disable=g-import-not-at-top
from reverie.envs.registry import make_batched_env  # pylint: disable=g-import-not-at-top
from reverie.launch import actor as actor_lib  # pylint: disable=g-import-not-at-top
from reverie.launch import contract  # pylint: disable=g-import-not-at-top
from reverie.launch.config import load_config  # pylint: disable=g-import-not-at-top
from reverie.launch.episode_stats import EpisodeStats  # pylint: disable=g-import-not-at-top
from reverie.launch.run_state import RunState  # pylint: disable=g-import-not-at-top

# pylint: disable=protected-access
_EnvPolicy, _running_actor, _running_env_policy = (
    bench._EnvPolicy, bench._running_actor, bench._running_env_policy)
# pylint: enable=protected-access
_NEVER = 10**15  # actor.weight_update_interval_steps of an actor that never looks for weights


def interleaved_cpu(config, windows: int, seconds: float, running):
  """(rate ratio, CPU-per-vector-step ratio, the other path's on-CPU share) of
  `actor_throughput.interleaved_windows`."""
  other, alone = bench.interleaved_windows(config, windows, seconds, running)
  cpu_ratio = (other.cpu_seconds / other.lane_steps) / (alone.cpu_seconds / alone.lane_steps)
  return bench.rate_ratio(other, alone), cpu_ratio, other.cpu_seconds / other.seconds


def _variants(config, lanes: int, server, root: str, push_seconds: float):
  never = load_config("dqn_cartpole", [f"actor.envs_per_actor={lanes}",
                                       f"actor.weight_update_interval_steps={_NEVER}"]).config
  return {
      "actor": lambda: _running_actor(config, server, root, push_seconds),
      "no pulls": lambda: _running_actor(never, server, root, push_seconds),
      "no weights": lambda: _running_actor(never, server, root, 0.0),
      "A/A": lambda: _running_env_policy(config),
  }


def _cpu_per_call(body, calls: int, repeats: int = 7) -> float:
  """Median thread CPU of `body(calls)` over `repeats`, in us per call."""
  times = []
  for _ in range(repeats):
    started = time.thread_time()
    body(calls)
    times.append((time.thread_time() - started) / calls * 1e6)
  return statistics.median(times)


def own_work(config, server, root: str, vector_steps: int = 2048):
  """[(part, us per vector step)]: env + policy first, then the actor's own parts."""
  lanes = config.actor.envs_per_actor
  path = _EnvPolicy(config, make_batched_env("CartPole-v1", lanes))
  recorded = []
  observation = path._observation  # pylint: disable=protected-access
  for _ in range(vector_steps):
    action = path._policy.act(observation, 0.05)  # pylint: disable=protected-access
    step = path.env.step(action)
    recorded.append((action, step))
    observation = step.observation
  spec = path.env.action_spec

  def env_policy(n):
    for _ in range(n):
      path.step()

  state = RunState(max_env_steps=10**12)
  stats = EpisodeStats(lanes, contract.RunDir(tempfile.mkdtemp(dir=root)), 0,
                       rows_per_booking=config.replay.steps_per_item)

  def books(n):
    for i in range(n):
      stats.add(recorded[i % vector_steps][1], state)

  steps_per_item, n_step = config.replay.steps_per_item, config.agent.n_step_update
  blocks = transitions.NStepBlocks(lanes, n_step, observation, spec.shape, steps_per_item)

  def rows(n):
    for i in range(n):
      blocks.add(*recorded[i % vector_steps])
      if blocks.size == steps_per_item:
        blocks.take()

  client = reverb.Client(f"localhost:{server.port}")
  writer = ReplayWriter(client, contract.EXPERIENCE_TABLE, path.env.observation_spec, spec,
                        observation, steps_per_item, n_step, config.agent.gamma)

  def items(n):
    for i in range(n):
      writer.add(*recorded[i % vector_steps])
      if writer.item_ready():
        writer.create_item()
        actor_lib.flush_writer(writer.writer, state, client=client)

  puller = actor_lib.WeightPuller(client, contract.VARIABLES_TABLE, {}, _NEVER)

  def loop_checks(n):
    for _ in range(n):
      state.actors_should_stop()
      puller.due(lanes)

  parts = [("env + policy", _cpu_per_call(env_policy, vector_steps // 2)),
           ("EpisodeStats.add", _cpu_per_call(books, vector_steps)),
           ("the rows (NStepBlocks.add)", _cpu_per_call(rows, vector_steps)),
           ("ReplayWriter.add + items + flush", _cpu_per_call(items, vector_steps)),
           ("stop check + WeightPuller.due", _cpu_per_call(loop_checks, vector_steps))]
  actor_lib.close_writer(writer.writer)
  stats.close(state)
  path.env.close()
  return parts


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lanes", type=int, nargs="+", default=[64, 256])
  parser.add_argument("--calls", type=int, default=3, help="interleaved calls per version")
  parser.add_argument("--windows", type=int, default=20)
  parser.add_argument("--window-seconds", type=float, default=0.4)
  parser.add_argument("--push-interval-seconds", type=float, default=1 / 30)
  args = parser.parse_args()
  print(f"# one DQN actor (configs/dqn_cartpole.yaml, CartPole-v1) against env + policy, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}; medians of {args.calls} "
        f"interleaved calls of {args.windows} pairs of {args.window_seconds:g} s windows; "
        f"weights pushed every {args.push_interval_seconds:g} s", flush=True)
  with tempfile.TemporaryDirectory(prefix="reverie-bench-") as root:
    for lanes in args.lanes:
      config = load_config("dqn_cartpole", [f"actor.envs_per_actor={lanes}"]).config
      server = bench.start_server(config)
      variants = _variants(config, lanes, server, root, args.push_interval_seconds)
      results = {name: [] for name in variants}
      for _ in range(args.calls):
        for name, running in variants.items():  # alternating, so drift falls on all alike
          results[name].append(interleaved_cpu(config, args.windows, args.window_seconds,
                                               running()))
      print(f"\n{lanes} lanes: {'other path':<11} {'rate ratio':>10} {'CPU/step ratio':>14} "
            f"{'on CPU':>6}   (rate ratios of the calls)", flush=True)
      for name, runs in results.items():
        rate, cpu, on_cpu = (statistics.median(r[i] for r in runs) for i in range(3))
        each = " ".join(f"{r[0]:.2f}" for r in runs)
        print(f"{'':>10}{name:<11} {rate:>10.2f} {cpu:>14.2f} {on_cpu:>6.2f}   ({each})",
              flush=True)
      parts = own_work(config, server, root)
      server.stop()
      base = parts[0][1]
      print(f"{lanes} lanes: the actor's own work, us of thread CPU per vector step "
            f"(share of env + policy's)", flush=True)
      for name, us in parts:
        print(f"{'':>10}{name:<34} {us:>7.1f} {us / base:>6.1%}", flush=True)
  print("(rate ratio: the other path's env steps/s over env + policy's in the same windows; "
        "CPU/step ratio: its thread's CPU per vector step over env + policy's; on CPU: the share "
        "of its windows its thread ran. Own work: each part alone, after the steps were "
        "recorded; 'items' includes the rows.)")


if __name__ == "__main__":
  main()
