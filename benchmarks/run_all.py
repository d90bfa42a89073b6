"""Runs every benchmark and writes its table into benchmarks/results/ (`make bench`).

Each benchmark runs as its own process with this Python; its stdout (the
table) is shown as it comes and written to benchmarks/results/<name>.txt as a
new dated section above the earlier ones, which are kept. The section header
names the date, the core count, the command and whether other benchmark
processes (time_to_solve.py, `reverie train`, pytest, ... not started by this run) were
seen while it ran, since those make the machine noisy.

    python benchmarks/run_all.py [--only NAME...] [--baselines-python PATH]
"""

import argparse
import os
import pathlib
import subprocess
import sys
import threading
import time

BENCHMARKS = pathlib.Path(__file__).resolve().parent
RESULTS = BENCHMARKS / "results"
# name: (results file, arguments after the script)
RUNS = {
    "sb3_dqn": ("time_to_solve_sb3.txt", ["time_to_solve_sb3.py", "--config", "dqn_cartpole"]),
    "sb3_ppo": ("time_to_solve_sb3.txt", ["time_to_solve_sb3.py", "--config", "ppo_cartpole"]),
    "actor": ("actor_throughput.txt", ["actor_throughput.py"]),
    "learner": ("learner_throughput.txt", ["learner_throughput.py"]),
    "time_to_solve_dqn": ("time_to_solve.txt", ["time_to_solve.py", "--config", "dqn_cartpole"]),
    "time_to_solve_ppo": ("time_to_solve_ppo_cartpole.txt",
                          ["time_to_solve.py", "--config", "ppo_cartpole"]),
    "launchers": ("launchers.txt", ["launchers.py"]),
}
_MARKERS = (b"time_to_solve", b"reverie train", b"actor_throughput", b"learner_throughput",
            b"pytest", b"learner_replicas", b"policy_call", b"launchers")


def _parent(pid: int) -> int:
  try:
    return int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
  except (OSError, IndexError, ValueError):
    return 0


def _others() -> set:
  """Benchmark or training processes on this machine that this process did not start."""
  found = set()
  for entry in pathlib.Path("/proc").iterdir():
    if not entry.name.isdigit():
      continue
    try:
      cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
      continue
    if not any(marker in cmdline for marker in _MARKERS):
      continue
    pid, ours = int(entry.name), False
    while pid > 1:
      if pid == os.getpid():
        ours = True
        break
      pid = _parent(pid)
    if not ours:
      found.add(cmdline.decode(errors="replace").strip()[:70])
  return found


def run(name: str, baselines_python: str) -> str:
  """Runs one benchmark; returns its section for the results file."""
  _, arguments = RUNS[name]
  command = [sys.executable, str(BENCHMARKS / arguments[0]), *arguments[1:]]
  if arguments[0] == "time_to_solve_sb3.py":
    command += ["--baselines-python", baselines_python]
  seen, done = set(), threading.Event()

  def watch():
    while not done.wait(2.0):
      seen.update(_others())

  watcher = threading.Thread(target=watch, daemon=True)
  seen.update(_others())
  load = os.getloadavg()[0]
  started = time.strftime("%Y-%m-%d %H:%M %Z")
  watcher.start()
  print(f"== {name}: {' '.join(command)}", flush=True)
  lines = []
  with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        cwd=BENCHMARKS.parent) as process:
    stderr = []
    reader = threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True)
    reader.start()
    for line in process.stdout:
      print(line, end="", flush=True)
      lines.append(line)
    process.wait()
    reader.join()
  done.set()
  watcher.join()
  if process.returncode != 0:
    raise SystemExit(f"{name} exited {process.returncode}:\n{''.join(stderr)[-3000:]}")
  shown = " ".join([pathlib.Path(command[0]).name, *map(str, command[1:])]).replace(
      str(BENCHMARKS.parent) + "/", "")
  load_note = ("other benchmark/training processes ran meanwhile: " + "; ".join(sorted(seen))
               if seen else "no other benchmark or training process seen")
  header = (f"## {started}, {os.cpu_count()} cores, load average {load:.2f} at start; {load_note}\n"
            f"## `{shown}`\n")
  return header + "".join(lines)


def write_section(path: pathlib.Path, section: str) -> None:
  """Puts the new section above the earlier ones (newest first, as the files are kept)."""
  earlier = path.read_text() if path.exists() else ""
  path.write_text(section + ("\n" + earlier if earlier else ""))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--only", nargs="+", choices=sorted(RUNS), default=list(RUNS))
  parser.add_argument("--baselines-python",
                      default=str(BENCHMARKS / ".venv-baselines" / "bin" / "python"))
  args = parser.parse_args()
  RESULTS.mkdir(exist_ok=True)
  for name in args.only:
    write_section(RESULTS / RUNS[name][0], run(name, args.baselines_python))


if __name__ == "__main__":
  main()
