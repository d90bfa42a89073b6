"""Time to solve, this tree against an earlier commit: whole `reverie train` processes, alternating.

For each seed, one run with this checkout's code and one with the code of
`--baseline` (a commit: checked out with `git worktree` into a temporary
folder, found first on PYTHONPATH, so the same virtual environment runs
both), in alternating order, scored as benchmarks/time_to_solve.py scores
them (without its final `reverie eval`). The table gives both medians and
the ratio, and the seconds to the first evaluation, which is where start-up
time shows.

    python benchmarks/time_to_solve_ab.py --baseline fcc193c [--config ppo_cartpole]
        [--seeds 0 1 2 3 4 5 6 7] [--set KEY=VALUE ...]
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import time_to_solve  # pylint: disable=g-import-not-at-top,wrong-import-position

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The package folders an installed Reverie maps to (pyproject.toml's package-dir).
PACKAGES = ("agents", "envs", "launch", "configs")


def baseline_tree(commit: str, scratch: pathlib.Path) -> pathlib.Path:
  """A folder to put on PYTHONPATH whose `reverie` package is `commit`'s code."""
  tree = scratch / "tree"
  subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), commit],
                 check=True, capture_output=True)
  package = scratch / "path" / "reverie"
  package.mkdir(parents=True)
  (package / "__init__.py").touch()
  for name in PACKAGES:
    (package / name).symlink_to(tree / name)
  return package.parent


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--baseline", required=True, help="a commit of this repository")
  parser.add_argument("--config", default="dqn_cartpole", choices=sorted(time_to_solve.TARGETS))
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5, 6, 7])
  parser.add_argument("--set", action="append", default=[], help="config overrides for both")
  args = parser.parse_args()
  git = lambda *command: subprocess.run(["git", "-C", str(ROOT), *command], capture_output=True,
                                        text=True, check=True).stdout.strip()
  head = git("rev-parse", "--short", "HEAD") + (" + local changes" if git("status", "--porcelain",
                                                                           "--untracked-files=no")
                                                else "")
  budget = 2 * time_to_solve.TARGETS[args.config][2]
  extra = [a for kv in args.set for a in ("--set", kv)]
  with tempfile.TemporaryDirectory(prefix="reverie-ab-") as scratch:
    scratch = pathlib.Path(scratch)
    trees = {"this": None, args.baseline: str(baseline_tree(args.baseline, scratch))}
    print(f"# {args.config}: this tree ({head}) vs {args.baseline}, seeds "
          f"{' '.join(map(str, args.seeds))}, run.max_env_steps={budget}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    print(f"{'seed':>4} {'code':>10} {'solved':>6} {'env steps':>10} {'solve s':>8} "
          f"{'1st eval s':>10} {'process s':>9}", flush=True)
    rows = {name: [] for name in trees}
    try:
      for seed in args.seeds:
        order = list(trees) if seed % 2 == 0 else list(trees)[::-1]
        for name in order:
          os.environ.pop("PYTHONPATH", None)
          if trees[name]:
            os.environ["PYTHONPATH"] = trees[name]
          row = time_to_solve.run_seed(args.config, seed, budget, scratch / name / "runs", extra,
                                       final_eval=False)
          rows[name].append(row)
          fmt = time_to_solve.fmt
          print(f"{seed:>4} {name:>10} {str(row['solved']):>6} {fmt(row['env_steps'], ','):>10} "
                f"{fmt(row['solve_seconds'], '.2f'):>8} "
                f"{fmt(row['first_eval_seconds'], '.2f'):>10} "
                f"{row['process_seconds']:>9.1f}", flush=True)
    finally:
      os.environ.pop("PYTHONPATH", None)
      subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                      str(scratch / "tree")], capture_output=True)
    this, base = rows["this"], rows[args.baseline]
    print(f"\nmedian (unsolved = inf) {'this':>8} {args.baseline:>10} {'ratio':>6}")
    for label, key, spec in (("env steps to solve", "env_steps", ",.0f"),
                             ("wall seconds to solve", "solve_seconds", ".2f"),
                             ("seconds to 1st eval", "first_eval_seconds", ".2f")):
      ours, theirs = time_to_solve.median_solved(this, key), time_to_solve.median_solved(base, key)
      print(f"{label:<23} {format(ours, spec):>8} {format(theirs, spec):>10} "
            f"{ours / theirs:>6.2f}")
    print(f"(ratio = this / {args.baseline})")


if __name__ == "__main__":
  main()
