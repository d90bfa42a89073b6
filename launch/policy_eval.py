"""`reverie eval`: scores a run's newest greedy policy, a SavedModel or a .tflite file.

Writes summary.json and episodes.csv and returns the summary; episodes run
side by side through the evaluator's `run_episodes`.
"""

import contextlib
import csv
import json
import os
import pathlib
import sys
from typing import Callable, Optional, Tuple

import yaml

from reverie.envs.registry import make_batched_env
from reverie.launch import contract
from reverie.launch.errors import ReverieError
from reverie.launch.evaluator import run_episodes


def evaluate(path: str, episodes: int, env_id: Optional[str], seed: int,
             output: Optional[str]) -> dict:
  """Runs `episodes` greedy episodes of the policy at `path` and writes the results.

  Raises:
    ReverieError: the path is missing, not a policy, or needs --env.
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
  if env_id is None:
    if run_dir is None:
      raise ReverieError(f"{path}: a policy outside a run directory needs --env ENV_ID")
    env_id = yaml.safe_load(run_dir.config.read_text())["env"]["id"]
  policy, train_step, observation_shape = load_policy(target)
  env = make_batched_env(env_id, episodes)
  try:
    if tuple(env.observation_spec.shape) != tuple(observation_shape):
      raise ReverieError(f"{path}: the policy takes observations of shape {list(observation_shape)}, "
                         f"{env_id} gives {list(env.observation_spec.shape)}; pass the --env it "
                         "was trained on")
    result = run_episodes(env, policy, seed)
  finally:
    env.close()
  summary = {**result.summary(), "env": env_id, "policy": str(target), "train_step": train_step,
             "seed": seed}
  out = pathlib.Path(output) if output else (run_dir.eval if run_dir else target.parent / "eval")
  write_results(out, summary, result)
  return {**summary, "output": str(out)}


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
