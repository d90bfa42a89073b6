"""PNG figures (matplotlib, Agg backend: no display needed) for `reverie eval` and `compare`."""

import pathlib
from typing import Dict, Sequence, Tuple

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position


def plot_checkpoints(rows: Sequence[dict], path: pathlib.Path, title: str) -> None:
  """Average eval return (± std, min and max) of every export against its train step."""
  steps = [r["train_step"] for r in rows]
  mean = [r["avg_return"] for r in rows]
  std = [r["std_return"] for r in rows]
  figure, axes = plt.subplots(figsize=(7, 4.5))
  axes.fill_between(steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                    alpha=0.25, label="± std")
  axes.plot(steps, [r["min_return"] for r in rows], ":", color="gray", label="min / max")
  axes.plot(steps, [r["max_return"] for r in rows], ":", color="gray")
  axes.plot(steps, mean, "o-", label="avg return")
  axes.set(xlabel="train step", ylabel="return", title=title)
  axes.grid(alpha=0.3)
  axes.legend()
  _save(figure, path)


def plot_runs(curves: Dict[str, Dict[str, Tuple[list, list, list]]], path: pathlib.Path) -> None:
  """A 2x2 grid: eval and actor episode return, against env steps and against wall time.

  Args:
    curves: {run name: {"eval": (env_steps, wall_seconds, returns),
      "actor": (env_steps, wall_seconds, returns)}}.
    path: Where the PNG goes.
  """
  figure, grid = plt.subplots(2, 2, figsize=(12, 8), sharey="row")
  for color, (name, run) in zip(_colors(), curves.items()):
    for row, (kind, style) in enumerate([("eval", "o-"), ("actor", "-")]):
      steps, seconds, returns = run[kind]
      grid[row][0].plot(steps, returns, style, color=color, label=name, markersize=3)
      grid[row][1].plot(seconds, returns, style, color=color, label=name, markersize=3)
  for row, kind in enumerate(["eval return (avg)", "actor episode return"]):
    grid[row][0].set(xlabel="env steps", ylabel=kind)
    grid[row][1].set(xlabel="wall time (s)")
  for axes in grid.flat:
    axes.grid(alpha=0.3)
  grid[0][0].legend(fontsize="small")
  figure.tight_layout()
  _save(figure, path)


def _colors():
  cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  while True:
    yield from cycle


def _save(figure, path: pathlib.Path) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  figure.savefig(path, dpi=100)
  plt.close(figure)
