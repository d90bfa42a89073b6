"""Time to solve CartPole-v1 with the default DQN config, as whole `reverie train` processes.

For each seed: start `reverie train dqn_cartpole` (stop_at_return 475: the
evaluator's greedy average over 20 episodes), note the env steps and wall
seconds (from process start) of the first evaluation that reached it, then
score the exported policy with `reverie eval` on 20 fresh episodes.

    python benchmarks/time_to_solve.py [--seeds 0 1 2 3 4] [--max-env-steps 100000]

Targets (issue 3): every seed solves within 50,000 env steps; median wall
seconds <= 25 on a 2-core machine. The table compares each median with its target.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

REVERIE = pathlib.Path(sys.executable).parent / "reverie"
TARGET_RETURN = 475.0
TARGET_ENV_STEPS = 50_000
TARGET_WALL_SECONDS = 25.0


def run_seed(seed: int, max_env_steps: int, root: pathlib.Path, extra: list) -> dict:
  run_dir = root / f"seed{seed}"
  started = time.time()
  train = subprocess.run(
      [str(REVERIE), "train", "dqn_cartpole", "--run-dir", str(run_dir), "--set", f"seed={seed}",
       "--set", f"run.max_env_steps={max_env_steps}", "--set", f"run.stop_at_return={TARGET_RETURN}",
       *extra], capture_output=True, text=True)
  process_seconds = time.time() - started
  if train.returncode != 0:
    raise SystemExit(f"seed {seed}: reverie train exited {train.returncode}:\n{train.stderr[-2000:]}")
  status = json.loads((run_dir / "status.json").read_text())
  solved = next((e for e in status["evals"] if e["avg_return"] >= TARGET_RETURN), None)
  final = subprocess.run([str(REVERIE), "eval", str(run_dir), "--episodes", "20", "--seed", "0"],
                         capture_output=True, text=True, check=True)
  summary = json.loads((run_dir / "eval" / "summary.json").read_text())
  del final
  return {
      "seed": seed,
      "solved": solved is not None,
      "env_steps": solved["env_steps"] if solved else None,
      "solve_seconds": solved["time"] - started if solved else None,
      "process_seconds": process_seconds,
      "train_steps": status["train_step"],
      "final_eval": summary["avg_return"],
  }


def _fmt(value, spec):
  return "-" if value is None else format(value, spec)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
  parser.add_argument("--max-env-steps", type=int, default=100_000)
  parser.add_argument("--set", action="append", default=[], help="extra config overrides")
  args = parser.parse_args()
  extra = [item for kv in args.set for item in ("--set", kv)]
  print(f"# reverie train dqn_cartpole, {len(args.seeds)} seeds, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d')}", flush=True)
  print(f"{'seed':>4} {'solved':>6} {'env steps':>10} {'solve s':>8} {'process s':>9} "
        f"{'train steps':>11} {'final eval':>10}", flush=True)
  rows = []
  with tempfile.TemporaryDirectory(prefix="reverie-bench-") as root:
    for seed in args.seeds:
      row = run_seed(seed, args.max_env_steps, pathlib.Path(root), extra)
      rows.append(row)
      print(f"{row['seed']:>4} {str(row['solved']):>6} {_fmt(row['env_steps'], ',d'):>10} "
            f"{_fmt(row['solve_seconds'], '.1f'):>8} {row['process_seconds']:>9.1f} "
            f"{row['train_steps']:>11,} {row['final_eval']:>10.1f}", flush=True)
  solved = [r for r in rows if r["solved"]]
  within = sum(1 for r in solved if r["env_steps"] <= TARGET_ENV_STEPS)
  print(f"\nsolved within {TARGET_ENV_STEPS:,} env steps: {within}/{len(rows)} (target {len(rows)}/{len(rows)})")
  if solved:
    steps = statistics.median(r["env_steps"] for r in solved)
    seconds = statistics.median(r["solve_seconds"] for r in solved)
    print(f"{'metric':<28} {'median':>8} {'target':>8} {'ratio':>6}")
    print(f"{'env steps to solve':<28} {steps:>8,.0f} {TARGET_ENV_STEPS:>8,} {steps / TARGET_ENV_STEPS:>6.2f}")
    print(f"{'wall seconds to solve':<28} {seconds:>8.1f} {TARGET_WALL_SECONDS:>8.1f} "
          f"{seconds / TARGET_WALL_SECONDS:>6.2f}")
  print(f"median final eval (20 episodes, seeds 0-19): "
        f"{statistics.median(r['final_eval'] for r in rows):.1f}")


if __name__ == "__main__":
  main()
