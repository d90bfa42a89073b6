"""The `reverie` command line (DESIGN.md, 'The command line').

Config, environment and port checks run before TensorFlow is imported, so bad
input is answered in a fraction of a second with one line and exit code 2.
"""

import argparse
import datetime
import gc
import json
import os
import pathlib
import platform
import socket
import sys
import time
from typing import List, Optional

from reverie.launch import startup

SUPPORTED = "Reverie runs on Linux x86_64 with Python 3.11 (dm-reverb's wheels); " \
            "elsewhere use the container image (see README.md)"


def main(argv: Optional[List[str]] = None) -> int:
  """Entry point of the `reverie` console script; returns the exit code."""
  if sys.version_info[:2] != (3, 11) or sys.platform != "linux" or \
      platform.machine() not in ("x86_64", "AMD64"):
    print(f"reverie: error: Python {platform.python_version()} on {sys.platform} "
          f"{platform.machine()}: {SUPPORTED}", file=sys.stderr)
    return 2
  gc.disable()  # until the heavy imports are done (launch/startup.py)
  args = _parser().parse_args(argv)
  args.argv = sys.argv if argv is None else ["reverie", *argv]  # lineage.json's command line
  from reverie.launch.errors import ReverieError, TrainingFailed  # pylint: disable=g-import-not-at-top
  try:
    return args.command(args)
  except ReverieError as e:
    print(f"reverie: error: {e}", file=sys.stderr)
    return e.exit_code
  except TrainingFailed as e:
    print(f"reverie: training failed: {e}", file=sys.stderr)
    return e.exit_code
  except KeyboardInterrupt:
    print("reverie: interrupted", file=sys.stderr)
    return 130
  finally:
    gc.enable()  # for the commands that import nothing heavy


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="reverie", description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(required=True, metavar="COMMAND")

  train = sub.add_parser("train", help="train a policy")
  train.add_argument("config", nargs="?",
                     help="a YAML path or a name from configs/ (dqn_cartpole)")
  train.add_argument("--run-dir", help="where the run writes (default runs/<config>-<time>)")
  train.add_argument("--resume", metavar="RUN_DIR",
                     help="go on with a run: its config.yaml, newest readable checkpoint, replay")
  train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key; repeatable")
  train.set_defaults(command=_train)

  evaluate = sub.add_parser("eval", help="score a run's policy, a SavedModel or a .tflite file")
  evaluate.add_argument("path")
  evaluate.add_argument("--episodes", type=int, default=20)
  evaluate.add_argument("--env", help="environment id (required outside a run directory)")
  evaluate.add_argument("--seed", type=int, default=0, help="episode i uses seed + i")
  evaluate.add_argument("--output", help="where summary.json and episodes.csv go")
  evaluate.add_argument("--video", action="store_true",
                        help="record every episode to OUTPUT/videos/episode_<i>.mp4 (or .gif)")
  evaluate.add_argument("--video-format", choices=["auto", "mp4", "gif"], default="auto",
                        help="auto: mp4 when imageio-ffmpeg is installed, else gif")
  evaluate.add_argument("--all-checkpoints", action="store_true",
                        help="score every export under RUN/policies/steps/ (a run directory)")
  evaluate.set_defaults(command=_eval)

  compare = sub.add_parser("compare", help="plot and tabulate eval and actor returns of runs")
  compare.add_argument("runs", nargs="+", metavar="RUN_DIR")
  compare.add_argument("--output", default=".", help="where compare.png and compare.csv go")
  compare.set_defaults(command=_compare)

  runs = sub.add_parser("runs", help="list the runs under a folder")
  runs.add_argument("root", nargs="?", default="runs", help="the folder of run directories")
  runs.set_defaults(command=_runs)

  replay = sub.add_parser(
      "replay-server", help="by hand: start a run's Reverb server and coordinator (docs/cluster.md)")
  replay.add_argument("config", nargs="?", help="a YAML path or a name from configs/")
  replay.add_argument("--run-dir", help="where the run writes (default runs/<config>-<time>); "
                      "on storage every role's host sees")
  replay.add_argument("--resume", metavar="RUN_DIR", help="go on with a run")
  replay.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
  replay.add_argument("--coordinator-port", type=int, default=0,
                      help="port of the coordinator on run.bind_address (default: a free one)")
  replay.set_defaults(command=_replay_server)
  for role, about in (("actor", "steps environments into the replay server"),
                      ("learner", "trains from the replay server"),
                      ("evaluator", "scores the newest weights")):
    parser_ = sub.add_parser(role, help=f"by hand: one {role} that {about}")
    parser_.add_argument("run_dir", metavar="RUN_DIR", help="the run `reverie replay-server` made")
    parser_.add_argument("--replay", metavar="HOST:PORT",
                         help="the Reverb server (default: RUN_DIR/addresses.json)")
    parser_.add_argument("--coordinator", metavar="HOST:PORT",
                         help="the run's coordinator (default: RUN_DIR/addresses.json)")
    if role == "actor":
      parser_.add_argument("--index", type=int, default=0, help="0 .. actor.count - 1")
    if role == "learner":
      parser_.add_argument("--resume", action="store_true",
                           help="start from the newest readable checkpoint in RUN_DIR")
    parser_.set_defaults(command=_role, role=role)

  config = sub.add_parser("config", help="print every config key: value, type, doc")
  config.add_argument("config")
  config.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
  config.set_defaults(command=_config)
  return parser


def _config(args) -> int:
  from reverie.launch.config import describe, load_config  # pylint: disable=g-import-not-at-top
  loaded = load_config(args.config, args.set)
  rows = list(describe(loaded.config))
  width = max(len(key) for key, *_ in rows)
  type_width = max(len(kind) for _, _, kind, _ in rows)
  for key, value, kind, doc in rows:
    shown = json.dumps(value) if not isinstance(value, str) else value
    print(f"{key:<{width}}  {shown:<14} {kind:<{type_width}}  {doc}")
  return 0


def _eval(args) -> int:
  from reverie.launch.errors import ReverieError  # pylint: disable=g-import-not-at-top
  if args.episodes < 1:
    raise ReverieError(f"--episodes: must be >= 1, got {args.episodes}")
  if args.video and args.all_checkpoints:
    raise ReverieError("--video and --all-checkpoints: give one of them (record one policy, "
                       "or score every export)")
  startup.quiet_tensorflow()
  from reverie.launch import policy_eval  # pylint: disable=g-import-not-at-top
  from reverie.envs.registry import UnknownEnvironment  # pylint: disable=g-import-not-at-top
  try:
    if args.all_checkpoints:
      table = policy_eval.evaluate_all(args.path, args.episodes, args.env, args.seed, args.output)
      print(policy_eval.checkpoints_table(table))
      return 0
    video = policy_eval.video_format(args.video_format) if args.video else None
    summary = policy_eval.evaluate(args.path, args.episodes, args.env, args.seed, args.output,
                                   video=video)
  except UnknownEnvironment as e:
    raise ReverieError(f"--env: {e}") from None
  print(policy_eval.summary_line(summary))
  return 0


def _compare(args) -> int:
  startup.quiet_tensorflow()
  from reverie.launch import compare  # pylint: disable=g-import-not-at-top
  rows, figure = compare.compare_runs(args.runs, pathlib.Path(args.output))
  print(compare.table(rows))
  print(figure)
  return 0


def _runs(args) -> int:
  startup.quiet_tensorflow()
  from reverie.launch import runs  # pylint: disable=g-import-not-at-top
  print(runs.table(runs.list_runs(pathlib.Path(args.root))))
  return 0


def _train(args) -> int:
  return _start_run(args, by_hand=False)


def _replay_server(args) -> int:
  """`reverie replay-server`: the run directory and its config as for train, then serving."""
  return _start_run(args, by_hand=True)


def _start_run(args, by_hand: bool) -> int:
  from reverie.launch.signals import block_signals  # pylint: disable=g-import-not-at-top
  block_signals()  # before anything starts a thread (launch/signals.py)
  from reverie.launch.config import load_config  # pylint: disable=g-import-not-at-top
  from reverie.launch.errors import ReverieError  # pylint: disable=g-import-not-at-top
  args.by_hand = by_hand
  args.coordinator_port = _coordinator_port(args)  # checked before anything is written
  command = "replay-server" if by_hand else "train"
  if args.resume:
    return _resume(args)
  if not args.config:
    raise ReverieError(f"{command}: give a CONFIG (a name from configs/ or a YAML path), or "
                       "--resume RUN_DIR")
  loaded = load_config(args.config, args.set)
  config = loaded.config
  _check_before_run(config, by_hand=by_hand)
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  root = pathlib.Path(args.run_dir or f"runs/{loaded.name}-{stamp}")
  if root.exists() and any(root.iterdir()):
    raise ReverieError(f"--run-dir {root}: already holds files; give a new or empty directory")
  root.mkdir(parents=True, exist_ok=True)
  print(root, flush=True)
  config_yaml = loaded.to_yaml()
  (root / "config.yaml").write_text(config_yaml)
  startup.quiet_tensorflow()  # lineage names paths through launch/contract.py, which imports TF
  from reverie.launch import lineage  # pylint: disable=g-import-not-at-top
  lineage.write_lineage(root, config_yaml, args.argv)
  return _run_training(config, root, by_hand=by_hand, coordinator_port=args.coordinator_port)


def _coordinator_port(args) -> int:
  port = getattr(args, "coordinator_port", 0)
  if port:
    from reverie.launch.ports import check_port_free  # pylint: disable=g-import-not-at-top
    check_port_free(port, flag="--coordinator-port")
  return port


def _resume(args) -> int:
  """`train --resume RUN_DIR`: the run's config (with any --set, recorded), then training."""
  startup.quiet_tensorflow()  # launch/checkpoints.py imports TensorFlow
  from reverie.launch.checkpoints import has_checkpoints  # pylint: disable=g-import-not-at-top
  from reverie.launch.config import load_config  # pylint: disable=g-import-not-at-top
  from reverie.launch.errors import ReverieError  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(args.resume)
  if args.config or args.run_dir:
    raise ReverieError("--resume RUN_DIR: goes on in RUN_DIR with its own config.yaml; give no "
                       "CONFIG or --run-dir with it (--set still overrides)")
  if not (root / "config.yaml").is_file():
    what = "does not exist" if not root.exists() else "is not a run directory (no config.yaml)"
    raise ReverieError(f"--resume {root}: {what}; give a directory that `reverie train` made")
  if not has_checkpoints(root / "checkpoints"):
    raise ReverieError(f"--resume {root}: no checkpoint in {root / 'checkpoints'}; nothing to "
                       "resume, start a new run")
  loaded = load_config(str(root / "config.yaml"), args.set)
  config = loaded.config
  if config.strategy.kind == "multi_worker":
    raise ReverieError("--resume: runs with strategy.kind multi_worker cannot resume in this "
                       "version; resume with --set strategy.kind=default (or mirrored)")
  _check_before_run(config, by_hand=args.by_hand)
  print(root, flush=True)
  if args.set:  # the overrides are part of the run from now on
    (root / "config.yaml").write_text(loaded.to_yaml())
  return _run_training(config, root, resume=True, by_hand=args.by_hand,
                       coordinator_port=args.coordinator_port)


def _role(args) -> int:
  from reverie.launch.by_hand import role_command  # pylint: disable=g-import-not-at-top
  return role_command(args)


def _check_before_run(config, by_hand: bool = False) -> None:
  """The checks before a run starts: strategy, environment, spaces, a requested replay port."""
  from reverie.envs.registry import UnknownEnvironment, env_spaces  # pylint: disable=g-import-not-at-top
  from reverie.launch.config_schema import check_agent_spaces, check_available  # pylint: disable=g-import-not-at-top
  from reverie.launch.errors import ReverieError  # pylint: disable=g-import-not-at-top
  check_available(config)
  if config.run.launcher == "ray" and not by_hand:
    from reverie.launch.ports import check_ray_address  # pylint: disable=g-import-not-at-top
    if config.run.ray_address:
      check_ray_address(config.run.ray_address, "run.ray_address")
    elif os.environ.get("RAY_ADDRESS"):
      check_ray_address(os.environ["RAY_ADDRESS"], "RAY_ADDRESS")
  if by_hand and config.strategy.kind == "multi_worker":
    raise ReverieError("strategy.kind: multi_worker needs a launcher that starts the learner "
                       "workers (run.launcher local or ray); by hand, the learner is one process")
  try:
    observation_space, action_space = env_spaces(config.env.id, config.env)
  except UnknownEnvironment as e:
    raise ReverieError(f"env.id: {e}") from None
  check_agent_spaces(config, observation_space, action_space)
  if config.replay.port is not None:
    from reverie.launch.ports import check_port_free  # pylint: disable=g-import-not-at-top
    check_port_free(config.replay.port)


def _run_training(config, root: pathlib.Path, resume: bool = False, by_hand: bool = False,
                  coordinator_port: int = 0) -> int:
  from reverie.launch.run_state import RunState  # pylint: disable=g-import-not-at-top
  from reverie.launch.signals import SignalWatcher, Terminated  # pylint: disable=g-import-not-at-top
  state = RunState(max_env_steps=config.run.max_env_steps, actor_count=config.actor.count)
  signals = SignalWatcher(state)
  startup.quiet_tensorflow()
  from reverie.launch import contract  # pylint: disable=g-import-not-at-top
  from reverie.launch.errors import ReverieError, TrainingFailed  # pylint: disable=g-import-not-at-top
  in_process = not by_hand and config.run.launcher == "local" and \
      config.strategy.kind != "multi_worker"  # the learner starts in this process
  startup.import_frozen("reverie.launch.local", "reverie.launch.progress",
                        *(startup.LEARNER_MODULES if in_process else ()))
  from reverie.launch.local import run_local, setup_role_logs  # pylint: disable=g-import-not-at-top
  from reverie.launch.progress import Progress  # pylint: disable=g-import-not-at-top
  run_dir = contract.RunDir(root)
  if by_hand:
    import functools  # pylint: disable=g-import-not-at-top
    from reverie.launch.by_hand import serve_by_hand  # pylint: disable=g-import-not-at-top
    runner = functools.partial(serve_by_hand, coordinator_port=coordinator_port)
    setup_role_logs(run_dir, config, names=["replay_server_0"])
  elif config.run.launcher == "ray":
    from reverie.launch.ray_launcher import run_ray as runner  # pylint: disable=g-import-not-at-top
    setup_role_logs(run_dir, config, names=["launcher_0"])
  else:
    runner = run_local
    setup_role_logs(run_dir, config)
  _native_stderr_to(run_dir.log("native"))
  from reverie.launch import hparams  # pylint: disable=g-import-not-at-top
  hparams.write_start(str(run_dir.tensorboard("hparams")), _config_dict(run_dir),
                      trial_id=str(root.resolve()))
  progress = Progress(state)
  started = time.time()
  status, code, reason = "failed", 1, None
  try:
    runner(config, run_dir, progress, state, resume=resume)
    signals.raise_if_received()
    status, code, reason = "finished", 0, state.stop_reason
  except ReverieError:
    status, code, reason = "failed", 2, "bad input"
    raise
  except TrainingFailed as e:
    reason = str(e)
    raise
  except KeyboardInterrupt:
    status, code, reason = "interrupted", 130, "Ctrl-C"
    raise
  except Terminated:
    status, code, reason = "terminated", 143, "SIGTERM"
    print("reverie: terminated", file=sys.stderr)
    return 143
  except Exception as e:
    reason = f"{type(e).__name__}: {e}"
    raise
  finally:
    progress.close()
    wall_seconds = time.time() - started
    _write_status(run_dir, state, status, reason, wall_seconds)
    best = max(state.evals, key=lambda e: e["avg_return"], default=None)
    hparams.write_end(str(run_dir.tensorboard("hparams")), status, state.env_steps,
                      wall_seconds, state.evals[-1] if state.evals else None, best)
    if code == 0:
      print(_final_line(run_dir, state))
  return code


def _config_dict(run_dir) -> dict:
  import yaml  # pylint: disable=g-import-not-at-top
  return yaml.safe_load(run_dir.config.read_text())


def _native_stderr_to(path: pathlib.Path) -> None:
  """Sends what TensorFlow, Reverb and TFLite's C++ print to RUN_DIR/logs/native_0.log.

  Python's own stderr (errors, warnings) keeps the terminal: it moves to a
  duplicate of the original descriptor before fd 2 is pointed at the file.
  """
  sys.stderr.flush()
  terminal = os.dup(2)
  sys.stderr = os.fdopen(terminal, "w", buffering=1)
  native = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
  os.dup2(native, 2)
  os.close(native)


def _write_status(run_dir, state, status: str, reason, wall_seconds: float) -> None:
  best = max(state.evals, key=lambda e: e["avg_return"], default=None)
  record = {
      "status": status, "reason": reason, "train_step": state.train_step,
      "env_steps": state.env_steps, "episodes": state.episodes,
      "best_eval": best, "last_eval": state.evals[-1] if state.evals else None,
      "evals": state.evals, "wall_seconds": round(wall_seconds, 2),
      **({"roles": state.roles} if state.roles else {}),
      "host": socket.gethostname(), "finished_at": datetime.datetime.now().isoformat(),
  }
  run_dir.status.write_text(json.dumps(record, indent=2) + "\n")


def _final_line(run_dir, state) -> str:
  last = state.evals[-1] if state.evals else None
  score = f"; eval {last['avg_return']:.1f} over {last['episodes']} episodes" if last else ""
  return (f"{state.stop_reason}: {state.env_steps:,} env steps, train step {state.train_step:,}"
          f"{score}; policies in {run_dir.policies}")


if __name__ == "__main__":
  sys.exit(main())
