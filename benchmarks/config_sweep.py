"""Time to solve of config variants: whole `reverie train` processes, alternating per seed.

Each variant is a name and its config overrides; the first variant is the
baseline the others are compared with. For each seed every variant runs once,
in the order given, scored as benchmarks/time_to_solve.py scores a run
(without its final `reverie eval`). Runs are not deterministic (actors and
the learner run side by side), so compare medians over many seeds.

    python benchmarks/config_sweep.py --config dqn_cartpole --seeds 0 1 2 3 4 5 6 7 \\
        --variant base= --variant lr=agent.learning_rate=0.01,replay.samples_per_insert=128
"""

import argparse
import os
import pathlib
import re
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import time_to_solve  # pylint: disable=g-import-not-at-top,wrong-import-position


def parse_variant(text: str):
  """'name=key=value,key=value' -> (name, ['--set', 'key=value', ...]); 'name=' = no overrides.

  A comma starts a new override only before `key=`, so list values keep theirs
  ('fc=agent.fc_layer_params=[64,64]').
  """
  name, _, overrides = text.partition("=")
  if not name:
    raise argparse.ArgumentTypeError(f"variant {text!r}: give NAME=KEY=VALUE[,KEY=VALUE...]")
  return name, [a for kv in re.split(r",(?=[A-Za-z_][\w.]*=)", overrides) if kv
                for a in ("--set", kv)]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="dqn_cartpole", choices=sorted(time_to_solve.TARGETS))
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5, 6, 7])
  parser.add_argument("--variant", type=parse_variant, action="append", required=True,
                      help="NAME=KEY=VALUE[,KEY=VALUE...]; the first one is the baseline")
  args = parser.parse_args()
  variants = dict(args.variant)
  budget = 2 * time_to_solve.TARGETS[args.config][2]
  print(f"# reverie train {args.config} (run.max_env_steps={budget}), variants alternating per "
        f"seed, seeds {' '.join(map(str, args.seeds))}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d')}", flush=True)
  for name, extra in variants.items():
    print(f"#   {name}: {' '.join(extra[1::2]) or '(the config as it is)'}", flush=True)
  print(f"{'variant':>12} {'seed':>4} {'solved':>6} {'env steps':>10} {'solve s':>8} "
        f"{'1st eval s':>10}", flush=True)
  rows = {name: [] for name in variants}
  with tempfile.TemporaryDirectory(prefix="reverie-sweep-") as scratch:
    for seed in args.seeds:
      for name, extra in variants.items():
        row = time_to_solve.run_seed(args.config, seed, budget, pathlib.Path(scratch) / name,
                                     extra, final_eval=False)
        rows[name].append(row)
        print(f"{name:>12} {seed:>4} {str(row['solved']):>6} "
              f"{time_to_solve.fmt(row['env_steps'], ',d'):>10} "
              f"{time_to_solve.fmt(row['solve_seconds'], '.1f'):>8} "
              f"{time_to_solve.fmt(row['first_eval_seconds'], '.2f'):>10}", flush=True)
  base = next(iter(variants))
  print(f"\nmedians (unsolved = inf; ratio = variant / {base})")
  print(f"{'variant':>12} {'solved':>7} {'env steps':>10} {'ratio':>6} {'solve s':>8} "
        f"{'ratio':>6} {'1st eval s':>10}")
  base_steps, base_seconds = (time_to_solve.median_solved(rows[base], key)
                              for key in ("env_steps", "solve_seconds"))
  for name, result in rows.items():
    steps, seconds = (time_to_solve.median_solved(result, key)
                      for key in ("env_steps", "solve_seconds"))
    first = statistics.median(r["first_eval_seconds"] for r in result)
    print(f"{name:>12} {sum(r['solved'] for r in result):>3}/{len(result):<3} {steps:>10,.0f} "
          f"{steps / base_steps:>6.2f} {seconds:>8.2f} {seconds / base_seconds:>6.2f} "
          f"{first:>10.2f}")


if __name__ == "__main__":
  main()
