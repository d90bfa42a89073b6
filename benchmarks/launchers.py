"""The Ray launcher against the local one: env steps/s, start-up time, memory per actor.

    python benchmarks/launchers.py [--rounds 3] [--actors 1 2] [--env-steps 30000]

Each round runs the real `reverie train dqn_cartpole` command once per
launcher and actor count, alternating which launcher goes first, with the
config's defaults except the budget (evals only at the end). Measured per run:

- env steps/s: the sum over actors of each actor's median
  `actor/env_steps_per_second` (its 2 s windows, from TensorBoard);
- first learner step: seconds from starting the command to the wall time of
  the learner's first `learner/loss` summary (imports, Ray's start, role
  start-up, replay min size);
- memory: resident memory of each actor process, sampled every 0.5 s (its
  peak); under the local launcher the actors are threads, so this is the
  whole process (every role together).

The local launcher is the baseline; ratio = ray / local (medians over rounds).
"""

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = pathlib.Path(__file__).resolve().parents[1]
REVERIE = pathlib.Path(sys.executable).parent / "reverie"


def _rss_mb(pid: int) -> float:
  try:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  except (FileNotFoundError, ProcessLookupError, ValueError):
    pass
  return 0.0


def _events(run_dir: pathlib.Path, role: str, tag: str):
  """[(wall_time, value)] of one scalar from a role's event files."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # pylint: disable=g-import-not-at-top
  events = EventAccumulator(str(run_dir / "tb" / role), size_guidance={"tensors": 0})
  events.Reload()
  if tag not in events.Tags()["tensors"]:
    return []
  return [(e.wall_time, float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]


def run_once(launcher: str, actors: int, env_steps: int, root: str) -> dict:
  run_dir = pathlib.Path(tempfile.mkdtemp(dir=root)) / "run"
  command = [str(REVERIE), "train", "dqn_cartpole", "--run-dir", str(run_dir),
             "--set", f"run.launcher={launcher}", "--set", f"actor.count={actors}",
             "--set", f"run.max_env_steps={env_steps}", "--set", "run.stop_at_return=null",
             "--set", f"eval.interval_steps={env_steps}"]
  started = time.time()
  process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
  peaks = {}

  def sample():
    while process.poll() is None:
      pids = {f"actor_{i}": run_dir / "pids" / f"actor_{i}" for i in range(actors)}
      for name, path in pids.items():
        try:
          pid = int(path.read_text())
        except (FileNotFoundError, ValueError):
          continue
        peaks[name] = max(peaks.get(name, 0.0), _rss_mb(pid))
      time.sleep(0.5)

  sampler = threading.Thread(target=sample, daemon=True)
  sampler.start()
  _, stderr = process.communicate(timeout=900)
  sampler.join()
  if process.returncode != 0:
    raise SystemExit(f"{launcher} with {actors} actors failed ({process.returncode}):\n{stderr}")
  rate = sum(statistics.median(v for _, v in _events(run_dir, f"actor_{i}",
                                                    "actor/env_steps_per_second"))
             for i in range(actors))
  first_step = min(t for t, _ in _events(run_dir, "learner", "learner/loss")) - started
  return {"rate": rate, "first_step": first_step,
          "rss": statistics.median(peaks.values()) if peaks else 0.0,
          "wall": time.time() - started}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
  parser.add_argument("--env-steps", type=int, default=30_000)
  args = parser.parse_args()
  results = {}
  with tempfile.TemporaryDirectory(prefix="reverie-launchers-") as root:
    for round_ in range(args.rounds):
      for actors in args.actors:
        order = ["local", "ray"] if round_ % 2 == 0 else ["ray", "local"]
        for launcher in order:
          result = run_once(launcher, actors, args.env_steps, root)
          results.setdefault((launcher, actors), []).append(result)
          print(f"round {round_}: {launcher:5s} {actors} actor(s): {result['rate']:,.0f} env "
                f"steps/s, first learner step at {result['first_step']:.1f} s, actor process "
                f"{result['rss']:,.0f} MB, {result['wall']:.1f} s in all", flush=True)
  median = lambda launcher, actors, key: statistics.median(
      r[key] for r in results[(launcher, actors)])
  print(f"\nDQN CartPole, {args.env_steps:,} env steps per run, {args.rounds} alternating rounds, "
        f"{os.cpu_count()} cores; medians (ratio = ray / local)")
  print(f"{'actors':>6}  {'env steps/s local':>17}  {'ray':>7}  {'ratio':>5}  "
        f"{'first step local (s)':>20}  {'ray':>5}  {'actor RSS MB local*':>19}  {'ray':>5}")
  for actors in args.actors:
    rates = [median(launcher, actors, "rate") for launcher in ("local", "ray")]
    firsts = [median(launcher, actors, "first_step") for launcher in ("local", "ray")]
    rss = [median(launcher, actors, "rss") for launcher in ("local", "ray")]
    print(f"{actors:>6}  {rates[0]:>17,.0f}  {rates[1]:>7,.0f}  {rates[1] / rates[0]:>5.2f}  "
          f"{firsts[0]:>20.1f}  {firsts[1]:>5.1f}  {rss[0]:>19,.0f}  {rss[1]:>5,.0f}")
  print("* local: the one process of every role (actors are threads); ray: each actor's process")


if __name__ == "__main__":
  main()
