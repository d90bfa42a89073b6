"""Evaluating policies and runs through the real CLI: video, checkpoints, compare, runs, lineage.

Two real runs are shared by the module: one that finishes (short, frequent
exports) and one started for a million env steps and killed with SIGKILL
midway; `reverie runs` is checked while the second is alive and after.
"""

import csv
import hashlib
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import time

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from conftest import REPO, REVERIE, run_cli
from reverie.launch import lineage
from reverie.launch.progress import eta_seconds, format_duration, progress_line
from reverie.launch.run_state import RunState

SHORT = ["--set", "run.max_env_steps=2000", "--set", "run.stop_at_return=null",
         "--set", "eval.interval_steps=1000", "--set", "eval.episodes=4",
         "--set", "replay.min_size=500", "--set", "learner.steps_per_call=10",
         "--set", "learner.export_interval_steps=50"]

# Gymnasium environments that cannot give RGB frames: one takes no render_mode,
# one takes it and renders nothing. Observations fit a CartPole policy.
UNRENDERABLE_ENVS = '''
import gymnasium
import numpy as np


class Blind(gymnasium.Env):
  observation_space = gymnasium.spaces.Box(-1.0, 1.0, (4,), np.float32)
  action_space = gymnasium.spaces.Discrete(2)

  def reset(self, seed=None, options=None):
    super().reset(seed=seed)
    return np.zeros(4, np.float32), {}

  def step(self, action):
    return np.zeros(4, np.float32), 1.0, True, False, {}


class Mute(Blind):
  metadata = {"render_modes": ["rgb_array"]}

  def __init__(self, render_mode=None):
    self.render_mode = render_mode

  def render(self):
    return None


gymnasium.register(id="Blind-v0", entry_point=Blind)
gymnasium.register(id="Mute-v0", entry_point=Mute)
'''


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
  """ROOT/finished (a short finished run) and ROOT/killed (SIGKILLed midway).

  Returns (root, what `reverie runs ROOT` printed while the killed run was alive).
  """
  root = tmp_path_factory.mktemp("runs")
  result = run_cli("train", "dqn_cartpole", "--run-dir", root / "finished", *SHORT, cwd=REPO)
  assert result.returncode == 0, result.stdout + result.stderr
  killed = root / "killed"
  with open(root.parent / "killed.log", "w") as log:
    process = subprocess.Popen(
        [str(REVERIE), "train", "dqn_cartpole", "--run-dir", str(killed),
         "--set", "run.max_env_steps=1000000", "--set", "run.stop_at_return=null"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
  try:
    deadline = time.monotonic() + 90
    while not (killed / "pids" / "learner_0").exists() and process.poll() is None:
      assert time.monotonic() < deadline, "the run did not start within 90 s"
      time.sleep(0.2)
    time.sleep(2)  # some env steps and actor summaries
    while_alive = run_cli("runs", root, cwd=REPO)
  finally:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
  assert process.returncode == -signal.SIGKILL, (root.parent / "killed.log").read_text()
  return root, while_alive


@pytest.fixture(scope="module")
def run_dir(runs_root):
  return runs_root[0] / "finished"


def table_rows(stdout):
  """{first cell: row cells} of a printed table."""
  return {line.split()[0]: line.split() for line in stdout.strip().splitlines()[1:]}


def read_episodes(directory):
  with open(directory / "episodes.csv") as f:
    return list(csv.DictReader(f))


def test_runs_lists_running_finished_and_killed(runs_root):
  root, while_alive = runs_root
  assert while_alive.returncode == 0, while_alive.stderr
  assert table_rows(while_alive.stdout)["killed"][1] == "running"
  result = run_cli("runs", root, cwd=REPO)
  assert result.returncode == 0, result.stderr
  header, *_ = result.stdout.splitlines()
  assert header.split()[:4] == ["run", "status", "agent", "env"]
  rows = table_rows(result.stdout)
  assert set(rows) == {"finished", "killed"}
  assert rows["finished"][1:4] == ["finished", "dqn", "CartPole-v1"]
  assert rows["killed"][1] == "killed"
  status = json.loads((root / "finished" / "status.json").read_text())
  assert rows["finished"][4] == f"{status['env_steps']:,}"
  assert rows["finished"][5] == f"{status['best_eval']['avg_return']:,.1f}"
  config_hash = json.loads((root / "finished" / "lineage.json").read_text())["config_sha256"]
  assert config_hash[:12] in rows["finished"] and config_hash[:12] != rows["killed"][7]


def test_lineage_has_every_field(run_dir):
  record = json.loads((run_dir / "lineage.json").read_text())
  assert set(record) >= {"config_sha256", "git", "packages", "host", "command_line",
                         "started_at", "started_at_unix", "resumes"}
  assert record["config_sha256"] == hashlib.sha256((run_dir / "config.yaml").read_bytes()).hexdigest()
  head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                        text=True, check=True).stdout.strip()
  assert record["git"]["commit"] == head and isinstance(record["git"]["dirty"], bool)
  for name in ("tensorflow", "tf-agents", "dm-reverb", "gymnasium", "gym"):
    assert record["packages"][name] == importlib.metadata.version(name), name
  assert "train dqn_cartpole --run-dir" in record["command_line"]
  assert str(run_dir) in record["command_line"]
  assert record["resumes"] == [] and record["host"]


def test_append_resume_keeps_every_entry(run_dir, tmp_path):
  copy = tmp_path / "run"
  copy.mkdir()
  for name in ("config.yaml", "lineage.json"):
    shutil.copy(run_dir / name, copy / name)
  first = lineage.append_resume(copy, ["reverie", "train", "--resume", str(copy)], 120)
  (copy / "config.yaml").write_text((copy / "config.yaml").read_text() + "# changed\n")
  lineage.append_resume(copy, ["reverie", "train", "--resume", str(copy), "--set", "seed=1"], 240)
  record = json.loads((copy / "lineage.json").read_text())
  original = json.loads((run_dir / "lineage.json").read_text())
  assert record["config_sha256"] == original["config_sha256"]
  assert [r["train_step"] for r in record["resumes"]] == [120, 240]
  assert record["resumes"][0] == first
  assert record["resumes"][1]["command_line"].endswith("--set seed=1")
  assert record["resumes"][1]["config_sha256"] != record["resumes"][0]["config_sha256"]


def test_git_state_only_for_the_top_of_a_checkout(tmp_path):
  assert lineage.git_state(tmp_path) is None  # not a checkout
  assert lineage.git_state(REPO / "launch") is None  # inside one, as a venv's site-packages is
  assert lineage.git_state(REPO)["commit"]


def test_exports_record_train_step_and_checkpoint(run_dir):
  status = json.loads((run_dir / "status.json").read_text())
  greedy = json.loads((run_dir / "policies" / "greedy" / "reverie_policy.json").read_text())
  assert greedy["train_step"] == status["train_step"]
  assert greedy["checkpoint_train_step"] == status["train_step"]  # saved just before the export
  assert (run_dir / (greedy["checkpoint"] + ".index")).is_file()
  assert greedy["policy_class"] == "GreedyPolicy"
  collect = json.loads((run_dir / "policies" / "collect" / "reverie_policy.json").read_text())
  assert collect["policy_class"] != "GreedyPolicy"
  steps = sorted(run_dir.glob("policies/steps/*"))
  assert steps
  for directory in steps:
    info = json.loads((directory / "reverie_policy.json").read_text())
    assert info["train_step"] == int(directory.name)


def test_hparams_has_the_config_and_the_final_eval(run_dir):
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  from tensorboard.plugins.hparams import api_pb2, metadata
  from tensorboard.util import tensor_util
  events = EventAccumulator(str(run_dir / "tb" / "hparams"), size_guidance={"tensors": 0})
  events.Reload()
  content = events.PluginTagToContent(metadata.PLUGIN_NAME)
  start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
  # learning rate of configs/dqn_cartpole.yaml (issue 9)
  assert start.hparams["agent.learning_rate"].number_value == pytest.approx(0.01)
  assert start.hparams["env.id"].string_value == "CartPole-v1"
  assert start.hparams["run.max_env_steps"].number_value == 2000
  end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
  assert end.status == api_pb2.STATUS_SUCCESS
  status = json.loads((run_dir / "status.json").read_text())
  final, = events.Tensors("hparams/final_eval_return")
  assert float(tensor_util.make_ndarray(final.tensor_proto)) == status["last_eval"]["avg_return"]
  assert final.step == status["env_steps"]


def test_video_decodes_with_a_frame_per_step(run_dir, tmp_path):
  out = tmp_path / "eval"
  started = time.monotonic()
  result = run_cli("eval", run_dir, "--episodes", "2", "--seed", "4", "--video", "--output", out,
                   cwd=REPO)
  seconds = time.monotonic() - started
  assert result.returncode == 0, result.stderr
  assert result.stderr == "", result.stderr
  episodes = read_episodes(out)
  assert [int(e["seed"]) for e in episodes] == [4, 5]
  for i, episode in enumerate(episodes):
    frames = iio.imread(out / "videos" / f"episode_{i}.mp4")
    assert frames.shape == (int(episode["length"]) + 1, 400, 600, 3)  # reset + every step
    assert frames.std() > 0
  summary = json.loads((out / "summary.json").read_text())
  assert summary["videos"] == str(out / "videos")
  print(f"eval --video of 2 episodes: {seconds:.1f} s")


def test_gif_video(run_dir, tmp_path):
  out = tmp_path / "eval"
  result = run_cli("eval", run_dir / "policies" / "greedy.tflite", "--env", "CartPole-v1",
                   "--episodes", "1", "--video", "--video-format", "gif", "--output", out,
                   cwd=REPO)
  assert result.returncode == 0, result.stderr
  frames = iio.imread(out / "videos" / "episode_0.gif")
  # Pillow merges identical consecutive frames (the cart moved less than a pixel).
  assert 1 < frames.shape[0] <= int(read_episodes(out)[0]["length"]) + 1
  assert frames.shape[1:3] == (400, 600)


def test_tflite_and_saved_model_give_the_same_returns(run_dir, tmp_path):
  returns = {}
  for name in ("greedy", "greedy.tflite"):
    out = tmp_path / name
    result = run_cli("eval", run_dir / "policies" / name, "--env", "CartPole-v1",
                     "--episodes", "3", "--seed", "11", "--output", out, cwd=REPO)
    assert result.returncode == 0, result.stderr
    returns[name] = [(e["seed"], e["return"], e["length"]) for e in read_episodes(out)]
  assert returns["greedy"] == returns["greedy.tflite"]
  assert [seed for seed, _, _ in returns["greedy"]] == ["11", "12", "13"]


def test_all_checkpoints_table_and_plot(run_dir, tmp_path):
  out = tmp_path / "checkpoints"
  result = run_cli("eval", run_dir, "--all-checkpoints", "--episodes", "2", "--output", out,
                   cwd=REPO)
  assert result.returncode == 0, result.stderr
  exported = sorted(int(p.name) for p in (run_dir / "policies" / "steps").iterdir())
  with open(out / "checkpoints.csv") as f:
    rows = list(csv.DictReader(f))
  assert [int(r["train_step"]) for r in rows] == exported
  assert all(int(r["episodes"]) == 2 and float(r["avg_return"]) >= 1 for r in rows)
  header, *printed, files = result.stdout.strip().splitlines()
  assert header.split()[:2] == ["train_step", "avg_return"]
  assert [int(line.split()[0].replace(",", "")) for line in printed] == exported
  assert files.endswith("checkpoints.png")
  assert Image.open(out / "checkpoints.png").size == (700, 450)


def test_compare_plots_and_tabulates_runs(runs_root, tmp_path):
  root, _ = runs_root
  out = tmp_path / "compare"
  result = run_cli("compare", root / "finished", root / "killed", "--output", out, cwd=REPO)
  assert result.returncode == 0, result.stderr
  rows = table_rows(result.stdout.rsplit("\n", 2)[0])
  status = json.loads((root / "finished" / "status.json").read_text())
  assert rows["finished"][1] == "finished" and rows["killed"][1] == "killed"
  assert rows["finished"][2] == f"{status['best_eval']['avg_return']:,.1f}"
  assert rows["finished"][4] == f"{status['env_steps']:,}"
  image = Image.open(out / "compare.png")
  assert image.size == (1200, 800) and image.format == "PNG"
  pixels = np.asarray(image.convert("L"))
  assert pixels.std() > 10, "the figure has lines, not a blank canvas"
  with open(out / "compare.csv") as f:
    assert [r["run"] for r in csv.DictReader(f)] == ["finished", "killed"]


def assert_one_line_error(result, *fragments):
  assert result.returncode == 2, result.stdout + result.stderr
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("reverie: error: "), result.stderr
  assert "Traceback" not in result.stderr
  for fragment in fragments:
    assert fragment in lines[0], lines[0]


def test_compare_rejects_a_path_that_is_not_a_run(run_dir, tmp_path):
  result = run_cli("compare", run_dir, tmp_path, "--output", tmp_path / "out", cwd=REPO)
  assert_one_line_error(result, str(tmp_path), "not a run directory")
  assert not (tmp_path / "out").exists()


def test_runs_rejects_a_missing_root(tmp_path):
  assert_one_line_error(run_cli("runs", tmp_path / "nope", cwd=REPO), "nope", "no such directory")


def test_all_checkpoints_needs_exports(run_dir, tmp_path):
  bare = tmp_path / "bare"
  bare.mkdir()
  shutil.copy(run_dir / "config.yaml", bare / "config.yaml")
  shutil.copytree(run_dir / "policies" / "greedy", bare / "policies" / "greedy")
  result = run_cli("eval", bare, "--all-checkpoints", cwd=REPO)
  assert_one_line_error(result, "no exported policies", "policies/steps")


@pytest.mark.parametrize("env_id", ["unrenderable:Blind-v0", "unrenderable:Mute-v0"])
def test_video_needs_an_env_that_renders(run_dir, tmp_path, env_id):
  (tmp_path / "unrenderable.py").write_text(UNRENDERABLE_ENVS)
  out = tmp_path / "out"
  result = run_cli("eval", run_dir / "policies" / "greedy", "--env", env_id, "--video",
                   "--episodes", "2", "--output", out, cwd=tmp_path)
  assert_one_line_error(result, "--video", env_id, "render", "without --video")
  assert not (out / "videos").exists()


def test_progress_line_shows_the_time_left():
  state = RunState(max_env_steps=100_000)
  assert "ETA" not in progress_line(state, 1.0)  # no rate yet
  state.env_steps, state.env_steps_per_second = 40_000, 500.0
  assert "ETA 2m00s" in progress_line(state, 80.0)
  assert eta_seconds(100_500, 100_000, 500.0) == 0
  assert [format_duration(s) for s in (42, 185, 7620)] == ["42s", "3m05s", "2h07m"]
