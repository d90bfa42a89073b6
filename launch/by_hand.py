"""Roles by hand, without Ray: `reverie replay-server` and `reverie actor|learner|evaluator`.

For clusters managed by something else (SLURM, plain Kubernetes), as
TF-Agents' distributed examples run one job per role (docs/cluster.md). The
replay server's process serves Reverb and the run's coordinator (a RunHub
over JSON/HTTP on `run.bind_address`) and writes both addresses into
RUN_DIR/addresses.json; each other role is one process that joins them.

Only the standard library is imported at the top: a role command answers bad
input in a moment, before TensorFlow loads.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import socket
import threading
import time
from typing import TYPE_CHECKING

from reverie.launch import startup
from reverie.launch.errors import ReverieError

if TYPE_CHECKING:
  from reverie.launch import contract
  from reverie.launch.config_schema import Config
  from reverie.launch.run_state import RunState

log = logging.getLogger("reverie.launch")
_ROLE_WAIT_SECONDS = 120.0  # how long a by-hand replay server waits for roles to finish


def role_command(args) -> int:
  """`reverie actor|learner|evaluator RUN_DIR`: one role of a by-hand run, in this process.

  A signal here (Ctrl-C, SIGTERM) stops the whole run the way Ctrl-C stops a
  local run: the learner saves a checkpoint, nothing is exported. Exits with
  the run's outcome: 0, or the code of the role's (or another role's) failure.
  """
  from reverie.launch.signals import SignalWatcher, block_signals  # pylint: disable=g-import-not-at-top
  block_signals()
  from reverie.launch.config import load_config  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(args.run_dir)
  if not (root / "config.yaml").is_file():
    what = "does not exist" if not root.exists() else "is not a run directory (no config.yaml)"
    raise ReverieError(f"RUN_DIR {root}: {what}; start `reverie replay-server CONFIG --run-dir "
                       f"{root}` first")
  config = load_config(str(root / "config.yaml")).config
  index = getattr(args, "index", 0)
  if not 0 <= index < (config.actor.count if args.role == "actor" else 1):
    raise ReverieError(f"--index: {index} is not an actor of this run; actor.count is "
                       f"{config.actor.count}, so give 0 .. {config.actor.count - 1}")
  addresses = role_addresses(root, args)
  startup.quiet_tensorflow()
  from reverie.launch import contract, hub, roles  # pylint: disable=g-import-not-at-top
  from reverie.launch.run_state import RunState  # pylint: disable=g-import-not-at-top
  # Registering first answers an unreachable coordinator with one line, before the role starts.
  restarts = hub.http_register(addresses["coordinator"], f"{args.role}_{index}",
                               socket.gethostname(), os.getpid())
  state = RunState(max_env_steps=config.run.max_env_steps, actor_count=config.actor.count)
  signals = SignalWatcher(state)
  name = f"{args.role}_{index}"
  print(f"{name}: replay server {addresses['replay']}, coordinator {addresses['coordinator']}; "
        f"log in {contract.RunDir(root).log(args.role, index)}", flush=True)
  roles.run_role_process(args.role, index, contract.RunDir(root), addresses["replay"],
                         hub.http_sync(addresses["coordinator"]),
                         lambda *_: restarts, node=socket.gethostname(),
                         resume=getattr(args, "resume", False), state=state)
  signals.raise_if_received()
  if state.error is not None:
    raise state.error
  print(f"{name}: done ({state.stop_reason or 'collection finished'})", flush=True)
  return 0


def role_addresses(root: pathlib.Path, args) -> dict:
  """--replay and --coordinator, else what the replay server wrote into RUN_DIR/addresses.json."""
  written = {}
  path = root / "addresses.json"
  if path.is_file():
    written = json.loads(path.read_text())
  addresses = {"replay": args.replay or written.get("replay"),
               "coordinator": args.coordinator or written.get("coordinator")}
  for key, value in addresses.items():
    if not value:
      raise ReverieError(f"--{key}: not given, and {path} is missing; start `reverie "
                         f"replay-server` first, or pass --{key} HOST:PORT")
  return addresses


def advertised_host(bind_address: str) -> str:
  """The host name other machines use to reach what listens on `bind_address`."""
  import socket  # pylint: disable=g-import-not-at-top
  if bind_address in ("0.0.0.0", "::", ""):
    return socket.getfqdn()
  return bind_address


def serve_by_hand(config: Config, run_dir: contract.RunDir, progress, state: RunState,
                  resume: bool = False, coordinator_port: int = 0) -> None:
  """`reverie replay-server`: Reverb and the run's coordinator, until the run ends.

  Writes RUN_DIR/addresses.json, so roles started with `--run-dir` alone
  find both. Waits for every role that started to finish (up to
  `_ROLE_WAIT_SECONDS` after the stop), then checkpoints the replay.
  """
  import portpicker  # pylint: disable=g-import-not-at-top
  from reverie.launch import roles  # pylint: disable=g-import-not-at-top
  from reverie.launch.hub import HubServer, RunHub  # pylint: disable=g-import-not-at-top
  from reverie.launch.replay_server import (checkpoint_replay, run_replay_server,  # pylint: disable=g-import-not-at-top
                                            start_replay_server)
  threading.current_thread().name = "replay_server_0"
  roles.configure_tensorflow(config)
  port = config.replay.port or portpicker.pick_unused_port()
  observation_spec, action_spec = roles.env_specs(config)
  server = start_replay_server(config, run_dir, port, observation_spec, action_spec)
  hub = RunHub(state, hold_actors=False)
  try:
    coordinator = HubServer(hub, config.run.bind_address, coordinator_port)
  except OSError as e:
    server.stop()
    raise ReverieError(f"--coordinator-port {coordinator_port}: cannot listen on "
                       f"{config.run.bind_address} ({e.strerror}); pick another port") from None
  host = advertised_host(config.run.bind_address)
  addresses = {"replay": f"{host}:{port}",
               "coordinator": f"{host}:{coordinator.address.rsplit(':', 1)[1]}"}
  run_dir.addresses.write_text(json.dumps(addresses, indent=2) + "\n")
  roles.write_pid(run_dir, "replay_server", 0)
  progress.note(f"replay server on {addresses['replay']} (Reverb listens on every interface); "
                f"coordinator on {coordinator.address}")
  progress.note(f"start the roles: reverie learner {run_dir.root}{' --resume' if resume else ''}"
                f" | reverie actor {run_dir.root} --index I | reverie evaluator {run_dir.root}")
  reporter = threading.Thread(target=run_replay_server, name="replay_server_0_reporter",
                              args=(server, run_dir, state,
                                    config.replay.checkpoint_interval_seconds), daemon=True)
  reporter.start()
  try:
    state.stop.wait()
    deadline = time.monotonic() + _ROLE_WAIT_SECONDS
    while hub.live_roles() and time.monotonic() < deadline:
      time.sleep(0.1)
    if hub.live_roles():
      log.warning("roles still running %.0f s after the stop: %s", _ROLE_WAIT_SECONDS,
                  ", ".join(sorted(hub.live_roles())))
    if state.error is not None:
      raise state.error
  finally:
    reporter.join(timeout=10)
    checkpoint_replay(server, run_dir, state.train_step)
    server.stop()
    coordinator.close()
