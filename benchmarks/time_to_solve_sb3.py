"""Wall seconds to a solved CartPole policy: Reverie against Stable-Baselines3, whole processes.

For each seed, one `reverie train CONFIG` process (benchmarks/time_to_solve.py's
run_seed, without its final `reverie eval`) and one Stable-Baselines3 process
(benchmarks/sb3_cartpole.py in benchmarks/.venv-baselines, rl-zoo's
hyperparameters, torch with one thread), in alternating order (even seeds
Reverie first, odd seeds SB3 first), same seed. Both are scored the same way:
wall seconds from process start until a greedy evaluation of 20 episodes
averages >= 475 and 20 episodes with other seeds confirm it, evaluated every
`eval.interval_steps` env steps of the Reverie config (Reverie's evaluator;
a callback in sb3_cartpole.py that stops training when solved).

    make bench-baselines   # once: benchmarks/.venv-baselines
    python benchmarks/time_to_solve_sb3.py [--config dqn_cartpole] [--seeds 0 1 ... 9]
    python benchmarks/time_to_solve_sb3.py --config ppo_cartpole

Budgets: Reverie gets twice the issue's env step budget (as time_to_solve.py
does), SB3 rl-zoo's n_timesteps (50,000 DQN, 100,000 PPO), which its linear
schedules are laid over. A seed that never solved counts as infinite.

Ten seeds by default, not five: SB3's DQN solves each seed in the same env
steps every time (seeds 0-4: 5,000, 36,000, 28,000, 6,000 and 8,000 in every
run in benchmarks/results/time_to_solve_sb3.txt), so over seeds 0-4 its median
was always seed 4's run, one of its fastest, while Reverie's runs vary from
one invocation to the next. Four ten-seed invocations put Reverie / SB3 at
0.37 (2026-11-26), 0.40, 0.30 and 0.35 (2026-11-27); their seeds 0-4 alone
gave 0.59, 0.46, 0.59 and 0.56.

Targets (issue 9): median wall seconds to solve, Reverie / SB3 <= 0.5 for DQN, <= 1.0 for PPO.
"""

import argparse
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import time_to_solve  # pylint: disable=g-import-not-at-top,wrong-import-position

BENCHMARKS = pathlib.Path(__file__).resolve().parent
BASELINES_PYTHON = BENCHMARKS / ".venv-baselines" / "bin" / "python"
# config: (SB3 algorithm, target ratio of the medians Reverie / SB3)
CONFIGS = {"dqn_cartpole": ("dqn", 0.5), "ppo_cartpole": ("ppo", 1.0)}


def _eval_settings(config: str) -> dict:
  """The Reverie config's evaluation cadence, episode count and seed (defaults resolved)."""
  from reverie.launch.config import load_config  # pylint: disable=g-import-not-at-top
  resolved = load_config(config, []).config
  return {"interval_steps": resolved.eval.interval_steps, "episodes": resolved.eval.episodes,
          "seed": resolved.eval.seed}


def run_sb3(python: str, algo: str, seed: int, evaluation: dict, target: float) -> dict:
  """One SB3 process; the solve time is measured from just before it is started."""
  started = time.time()
  run = subprocess.run(
      [python, str(BENCHMARKS / "sb3_cartpole.py"), algo, "--seed", str(seed),
       "--eval-interval-steps", str(evaluation["interval_steps"]),
       "--eval-episodes", str(evaluation["episodes"]), "--eval-seed", str(evaluation["seed"]),
       "--target", str(target)],
      capture_output=True, text=True)
  process_seconds = time.time() - started
  if run.returncode != 0:
    raise SystemExit(f"seed {seed}: sb3_cartpole.py exited {run.returncode}:\n{run.stderr[-2000:]}")
  records = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
  result = records[-1]["result"]
  evals = [r for r in records if "env_steps" in r and "result" not in r]
  solved = result["env_steps"] is not None
  return {"seed": seed, "solved": solved, "env_steps": result["env_steps"],
          "solve_seconds": result["time"] - started if solved else None,
          "first_eval_seconds": evals[0]["time"] - started if evals else None,
          "process_seconds": process_seconds, "versions": result}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="dqn_cartpole", choices=sorted(CONFIGS))
  parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
  parser.add_argument("--baselines-python", default=str(BASELINES_PYTHON))
  args = parser.parse_args()
  if not pathlib.Path(args.baselines_python).exists():
    raise SystemExit(f"{args.baselines_python} not found: run `make bench-baselines` first")
  algo, ratio_target = CONFIGS[args.config]
  target, _, budget, _ = time_to_solve.TARGETS[args.config]
  evaluation = _eval_settings(args.config)
  max_env_steps = 2 * budget
  print(f"# {args.config}: Reverie (run.max_env_steps={max_env_steps}) vs Stable-Baselines3 "
        f"{algo.upper()} (rl-zoo hyperparameters, torch 1 thread), seeds "
        f"{' '.join(map(str, args.seeds))}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}",
        flush=True)
  print(f"# solved = greedy eval of {evaluation['episodes']} episodes >= {target:g}, confirmed on "
        f"{evaluation['episodes']} other-seed episodes, evaluated every "
        f"{evaluation['interval_steps']:,} env steps; seconds from process start", flush=True)
  print(f"{'seed':>4} {'trainer':<8} {'solved':>6} {'env steps':>10} {'solve s':>8} "
        f"{'1st eval s':>10} {'process s':>9}", flush=True)
  rows = {"reverie": [], "sb3": []}
  versions = None
  with tempfile.TemporaryDirectory(prefix="reverie-bench-") as root:
    for i, seed in enumerate(args.seeds):
      order = ["reverie", "sb3"] if i % 2 == 0 else ["sb3", "reverie"]
      for trainer in order:
        if trainer == "reverie":
          row = time_to_solve.run_seed(args.config, seed, max_env_steps, pathlib.Path(root), [],
                                       final_eval=False)
        else:
          row = run_sb3(args.baselines_python, algo, seed, evaluation, target)
          versions = row["versions"]
        rows[trainer].append(row)
        fmt = time_to_solve.fmt
        print(f"{seed:>4} {trainer:<8} {str(row['solved']):>6} {fmt(row['env_steps'], ',d'):>10} "
              f"{fmt(row['solve_seconds'], '.1f'):>8} {fmt(row['first_eval_seconds'], '.1f'):>10} "
              f"{row['process_seconds']:>9.1f}", flush=True)
  print(f"\n{'median (unsolved = inf)':<24} {'reverie':>8} {'sb3':>8} {'ratio':>6} {'target':>7}")
  for name, key, spec in [("env steps to solve", "env_steps", ",.0f"),
                          ("wall seconds to solve", "solve_seconds", ".1f"),
                          ("seconds to 1st eval", "first_eval_seconds", ".1f")]:
    ours, theirs = (statistics.median(r[key] if r[key] is not None else math.inf
                                      for r in rows[t]) if key == "first_eval_seconds"
                    else time_to_solve.median_solved(rows[t], key) for t in ("reverie", "sb3"))
    ratio = ours / theirs if theirs else math.inf
    goal = f"<= {ratio_target:g}" if key == "solve_seconds" else ""
    print(f"{name:<24} {ours:>8{spec}} {theirs:>8{spec}} {ratio:>6.2f} {goal:>7}")
  print(f"(ratio = reverie / sb3; sb3 {versions['sb3']}, torch {versions['torch']} with "
        f"{versions['torch_threads']} thread)" if versions else "")


if __name__ == "__main__":
  main()
