"""Roles started by hand, without Ray: four `reverie` processes on 127.0.0.1.

`reverie replay-server` makes the run and serves Reverb and the run's
coordinator; `reverie learner`, `reverie actor` and `reverie evaluator` join
it with the addresses it wrote into RUN_DIR/addresses.json (or from flags),
as a cluster manager such as SLURM would start them.
"""

import json
import os
import signal
import subprocess
import time

import portpicker

from conftest import REPO, REVERIE, SHORT_RUN, run_cli, scalars


def _start(*args, log):
  return subprocess.Popen([str(REVERIE), *map(str, args)], cwd=REPO, stdout=log,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_for(path, process, seconds=120):
  deadline = time.monotonic() + seconds
  while not path.exists():
    assert process.poll() is None, f"exited with {process.returncode}"
    assert time.monotonic() < deadline, f"no {path}"
    time.sleep(0.2)


def test_four_roles_as_separate_processes(tmp_path):
  """Also the early stop: a return of 8 (CartPole's shortest episodes) is reached at the first
  eval, and the weights the evaluator confirmed travel to the learner for its export."""
  run_dir = tmp_path / "run"
  logs = {name: open(tmp_path / f"{name}.out", "w") for name in
          ("replay", "learner", "actor", "evaluator")}
  processes = {}
  try:
    processes["replay"] = _start("replay-server", "dqn_cartpole", "--run-dir", run_dir,
                                 *SHORT_RUN, "--set", "run.stop_at_return=8",
                                 log=logs["replay"])
    _wait_for(run_dir / "addresses.json", processes["replay"])
    addresses = json.loads((run_dir / "addresses.json").read_text())
    assert addresses["coordinator"].startswith("127.0.0.1:")  # run.bind_address's default
    processes["learner"] = _start("learner", run_dir, log=logs["learner"])
    # One role with its addresses from flags, as when RUN_DIR holds no addresses.json.
    processes["actor"] = _start("actor", run_dir, "--index", 0, "--replay", addresses["replay"],
                                "--coordinator", addresses["coordinator"], log=logs["actor"])
    processes["evaluator"] = _start("evaluator", run_dir, log=logs["evaluator"])
    codes = {name: process.wait(timeout=300) for name, process in processes.items()}
  finally:
    for process in processes.values():
      if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    for log in logs.values():
      log.close()
  outputs = {name: (tmp_path / f"{name}.out").read_text() for name in logs}
  assert codes == {name: 0 for name in processes}, outputs
  assert "reached stop_at_return 8" in outputs["replay"]
  record = json.loads((run_dir / "status.json").read_text())
  assert record["status"] == "finished" and record["reason"] == "reached stop_at_return 8"
  assert (run_dir / "solved_weights.npz").is_file()
  assert "loaded the weights the evaluator confirmed" in \
      (run_dir / "logs" / "learner_0.log").read_text()
  assert set(record["roles"]) == {"learner_0", "actor_0", "evaluator_0"}
  assert len({processes[name].pid for name in processes}) == 4
  for role in ("learner", "actor", "evaluator"):
    assert int((run_dir / "pids" / f"{role}_0").read_text()) == processes[role].pid
    assert (run_dir / "logs" / f"{role}_0.log").read_text().strip()
  assert scalars(run_dir, "learner")["learner/loss"]
  assert scalars(run_dir, "actor_0")["actor/env_steps_per_second"]
  assert scalars(run_dir, "replay_server")["replay/size"]
  assert scalars(run_dir, "evaluator")["eval/avg_return"]
  assert (run_dir / "policies" / "greedy" / "saved_model.pb").is_file()
  assert list((run_dir / "replay").glob("*/DONE"))


def _one_line_error(result, *words):
  assert result.returncode == 2, result.stdout + result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("reverie: error: "), result.stderr
  for word in words:
    assert word in lines[0], lines[0]


def test_a_role_without_its_replay_server_says_what_to_start(tmp_path):
  result = run_cli("actor", tmp_path / "nothing-here", cwd=REPO)
  _one_line_error(result, "does not exist", "reverie replay-server")
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  (run_dir / "config.yaml").write_text((REPO / "configs" / "dqn_cartpole.yaml").read_text())
  result = run_cli("learner", run_dir, cwd=REPO)
  _one_line_error(result, "--replay", "addresses.json is missing")
  port = portpicker.pick_unused_port()
  result = run_cli("evaluator", run_dir, "--replay", f"127.0.0.1:{port}",
                   "--coordinator", f"127.0.0.1:{port}", cwd=REPO)
  _one_line_error(result, f"--coordinator 127.0.0.1:{port}", "no coordinator answers there")
  result = run_cli("actor", run_dir, "--index", 3, "--replay", "x:1", "--coordinator", "x:1",
                   cwd=REPO)
  _one_line_error(result, "--index", "actor.count is 1")


def test_replay_server_refuses_a_busy_coordinator_port(tmp_path):
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket() as busy:
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    result = run_cli("replay-server", "dqn_cartpole", "--run-dir", tmp_path / "run",
                     "--coordinator-port", port, cwd=REPO)
  _one_line_error(result, f"--coordinator-port: port {port} is busy")
  assert not (tmp_path / "run").exists()  # refused before anything was written
