"""`reverie eval`: scores a run's newest greedy policy, a SavedModel or a .tflite file.

Writes summary.json and episodes.csv and returns the summary; episodes run
side by side through the evaluator's `run_episodes` (through
`video.record_episodes` with --video). `evaluate_all` scores every export of
a run (policies/steps/<train_step>/) into a table and a plot.
"""

import contextlib
import csv
import json
import os
import pathlib
import sys
from typing import Callable, List, Optional, Tuple

import yaml

from reverie.agents import export
from reverie.envs.registry import make_batched_env, render_fps
from reverie.launch import contract
from reverie.launch import plots
from reverie.launch import tables
from reverie.launch import video as video_lib
from reverie.launch.errors import ReverieError
from reverie.launch.evaluator import run_episodes

video_format = video_lib.video_format
CHECKPOINT_COLUMNS = ("train_step", "avg_return", "std_return", "min_return", "max_return",
                      "episodes")


def evaluate(path: str, episodes: int, env_id: Optional[str], seed: int,
             output: Optional[str], video: Optional[str] = None) -> dict:
  """Runs `episodes` greedy episodes of the policy at `path` and writes the results.

  Args:
    path: A run directory, a SavedModel policy directory or a .tflite file.
    episodes: How many episodes, side by side; episode i uses seed + i.
    env_id: The environment; None takes the run's `env.id`.
    seed: The first episode's seed.
    output: Where the results go; None: RUN_DIR/eval or beside the policy.
    video: 'mp4' or 'gif' to record every episode under OUTPUT/videos/; None records nothing.

  Raises:
    ReverieError: the path is missing, not a policy, needs --env, or the
      environment cannot render for --video.
  """
  target = pathlib.Path(path)
  if not target.exists():
    raise ReverieError(f"{path}: no such file or directory; give a run directory, a SavedModel "
                       "policy directory or a .tflite file")
  run_dir = _enclosing_run(target)
  if run_dir is not None and target == run_dir.root:
    target = run_dir.greedy_policy
    if not target.exists():
      raise ReverieError(f"{path}: this run has no exported greedy policy yet "
                         f"({target} is missing); wait for the run to export one")
  env_id = _env_id(path, env_id, run_dir)
  policy, train_step, observation_shape = load_policy(target)
  out = pathlib.Path(output) if output else (run_dir.eval if run_dir else target.parent / "eval")
  env = video_lib.make_rendering_env(env_id, episodes) if video else \
      make_batched_env(env_id, episodes)
  try:
    _check_shape(path, env, observation_shape, env_id)
    if video:
      result = video_lib.record_episodes(env, policy, seed, out / "videos", video,
                                         render_fps(env_id), env_id)
    else:
      result = run_episodes(env, policy, seed)
  finally:
    env.close()
  info = export.read_policy_info(target) if target.is_dir() else None
  summary = {**result.summary(), "env": env_id, "policy": str(target), "train_step": train_step,
             "seed": seed, "checkpoint": info and info.get("checkpoint")}
  if video:
    summary["videos"] = str(out / "videos")
  write_results(out, summary, result)
  return {**summary, "output": str(out)}


def evaluate_all(path: str, episodes: int, env_id: Optional[str], seed: int,
                 output: Optional[str]) -> List[dict]:
  """Scores every export under RUN/policies/steps/ on the same seeds; writes a table and a plot.

  Writes checkpoints.csv and checkpoints.png (return against train step) into
  RUN_DIR/eval/ or `output`, and returns one row per export, oldest first.

  Raises:
    ReverieError: `path` is not a run directory or the run has no exports there.
  """
  run_dir = _enclosing_run(pathlib.Path(path)) if pathlib.Path(path).is_dir() else None
  if run_dir is None or pathlib.Path(path).resolve() != run_dir.root.resolve():
    raise ReverieError(f"{path}: --all-checkpoints takes a run directory (one with config.yaml)")
  steps_dir = run_dir.policy_at(0).parent
  exports = sorted((int(p.name), p) for p in steps_dir.glob("*")
                   if p.name.isdigit() and (p / "saved_model.pb").is_file())
  if not exports:
    raise ReverieError(f"{path}: no exported policies under {steps_dir}; train with "
                       "learner.export_interval_steps set, or evaluate without --all-checkpoints")
  env_id = _env_id(path, env_id, run_dir)
  env = make_batched_env(env_id, episodes)
  rows = []
  try:
    for train_step, directory in exports:
      policy, _, observation_shape = load_policy(directory)
      _check_shape(str(directory), env, observation_shape, env_id)
      rows.append({"train_step": train_step, **run_episodes(env, policy, seed).summary(),
                   "policy": str(directory)})
  finally:
    env.close()
  out = pathlib.Path(output) if output else run_dir.eval
  tables.write_csv(out / "checkpoints.csv", [*CHECKPOINT_COLUMNS, "seed", "env", "policy"],
                   [[*(r[c] for c in CHECKPOINT_COLUMNS), seed, env_id, r["policy"]] for r in rows])
  plots.plot_checkpoints(rows, out / "checkpoints.png",
                         f"{run_dir.root.name}: {env_id}, {episodes} episodes from seed {seed}")
  return [{**r, "output": str(out)} for r in rows]


def checkpoints_table(rows: List[dict]) -> str:
  """What `eval --all-checkpoints` prints: one line per export, then where the files are."""
  table = tables.format_table(CHECKPOINT_COLUMNS, [[r[c] for c in CHECKPOINT_COLUMNS]
                                                   for r in rows])
  out = rows[0]["output"]
  return f"{table}\n{out}/checkpoints.csv, {out}/checkpoints.png"


def _env_id(path: str, env_id: Optional[str], run_dir: Optional[contract.RunDir]) -> str:
  if env_id is not None:
    return env_id
  if run_dir is None:
    raise ReverieError(f"{path}: a policy outside a run directory needs --env ENV_ID")
  return yaml.safe_load(run_dir.config.read_text())["env"]["id"]


def _check_shape(path: str, env, observation_shape, env_id: str) -> None:
  if tuple(env.observation_spec.shape) != tuple(observation_shape):
    raise ReverieError(f"{path}: the policy takes observations of shape {list(observation_shape)}, "
                       f"{env_id} gives {list(env.observation_spec.shape)}; pass the --env it "
                       "was trained on")


def load_policy(path: pathlib.Path):
  """(observations -> actions, train step or None, observation shape) for a policy file."""
  if path.suffix == ".tflite":
    return _tflite_policy(path)
  if not (path / "saved_model.pb").is_file():
    raise ReverieError(f"{path}: not a policy (no saved_model.pb, not a .tflite file)")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_probability  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  from tf_agents.trajectories import time_step as ts  # pylint: disable=g-import-not-at-top
  try:
    policy = tf.saved_model.load(str(path))
  except Exception as e:  # pylint: disable=broad-except
    raise ReverieError(f"{path}: cannot load this SavedModel ({type(e).__name__}); "
                       "re-export the policy") from None
  def act(observation):
    batch = observation.shape[0]
    time_step = ts.TimeStep(step_type=tf.fill([batch], ts.StepType.MID),
                            reward=tf.zeros([batch]), discount=tf.ones([batch]),
                            observation=tf.constant(observation))
    return policy.action(time_step).action.numpy()
  train_step = int(policy.get_train_step().numpy()) if hasattr(policy, "get_train_step") else None
  shape = policy.signatures["action"].structured_input_signature[1]["arg_0_observation"].shape[1:]
  return act, train_step, tuple(shape)


def _tflite_policy(path: pathlib.Path) -> Tuple[Callable, None, tuple]:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    with _quiet_native_stderr():  # TFLite's C++ notes its XNNPACK delegate on fd 2
      interpreter = tf.lite.Interpreter(model_path=str(path))
      interpreter.allocate_tensors()
  except ValueError:
    raise ReverieError(f"{path}: not a valid .tflite model; re-export the policy") from None
  source = interpreter.get_input_details()[0]
  target = interpreter.get_output_details()[0]
  def act(observation):
    if interpreter.get_input_details()[0]["shape"][0] != observation.shape[0]:
      interpreter.resize_tensor_input(source["index"], observation.shape)
      interpreter.allocate_tensors()
    interpreter.set_tensor(source["index"], observation.astype(source["dtype"]))
    interpreter.invoke()
    return interpreter.get_tensor(target["index"])
  return act, None, tuple(source["shape"][1:])


@contextlib.contextmanager
def _quiet_native_stderr():
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  try:
    yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


def write_results(out: pathlib.Path, summary: dict, episodes) -> None:
  out.mkdir(parents=True, exist_ok=True)
  (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
  with open(out / "episodes.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["episode", "seed", "return", "length"])
    for i, (ret, length) in enumerate(zip(episodes.returns, episodes.lengths)):
      writer.writerow([i, episodes.seed + i, ret, length])


def _enclosing_run(path: pathlib.Path) -> Optional[contract.RunDir]:
  for candidate in [path, *path.resolve().parents][:4]:
    run_dir = contract.RunDir(candidate)
    if run_dir.is_run():
      return run_dir
  return None


def summary_line(summary: dict) -> str:
  step = f" at train step {summary['train_step']}" if summary.get("train_step") is not None else ""
  return (f"{summary['env']}: avg return {summary['avg_return']:.1f} ± {summary['std_return']:.1f} "
          f"(min {summary['min_return']:.0f}, max {summary['max_return']:.0f}) over "
          f"{summary['episodes']} episodes{step}; {summary['output']}/summary.json")
