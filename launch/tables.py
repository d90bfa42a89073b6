"""Plain-text tables for the terminal: `reverie runs`, `reverie compare`, `eval --all-checkpoints`."""

import csv
import pathlib
from typing import Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
  """Columns padded to their widest cell; numbers right-aligned, text left-aligned."""
  cells = [[_cell(value) for value in row] for row in rows]
  widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
  numeric = [any(isinstance(row[i], (int, float)) for row in rows) and
             all(isinstance(row[i], (int, float)) or row[i] is None for row in rows)
             for i in range(len(headers))]
  def line(values):
    return "  ".join(v.rjust(w) if n else v.ljust(w)
                     for v, w, n in zip(values, widths, numeric)).rstrip()
  return "\n".join([line(headers), *(line(row) for row in cells)])


def write_csv(path: pathlib.Path, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
  """The same table as CSV (empty cells for missing values)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(headers)
    writer.writerows([["" if v is None else v for v in row] for row in rows])


def _cell(value: object) -> str:
  if value is None:
    return "-"
  if isinstance(value, bool):
    return str(value)
  if isinstance(value, int):
    return f"{value:,}"
  if isinstance(value, float):
    return f"{value:,.1f}"
  return str(value)
