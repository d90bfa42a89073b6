"""`reverie eval --video`: runs the evaluation episodes and records each one.

Episodes run side by side as in `evaluator.run_episodes`; every lane's frames
stream into its own file (an mp4 through imageio's ffmpeg plugin, or a gif
through Pillow), so memory holds no whole episode of frames for mp4.
"""

import contextlib
import os
import pathlib
import warnings
from typing import Callable, List, Optional

import numpy as np

from reverie.envs.batched import BatchedEnv
from reverie.envs.registry import env_spaces, make_batched_env
from reverie.launch.errors import ReverieError
from reverie.launch.evaluator import Episodes

DEFAULT_FPS = 30


def video_format(requested: str) -> str:
  """'mp4' or 'gif' for --video-format: 'auto' is mp4 when imageio-ffmpeg is installed.

  Raises:
    ReverieError: mp4 was asked for and imageio-ffmpeg is not installed.
  """
  if requested == "gif":
    return "gif"
  try:
    import imageio_ffmpeg  # pylint: disable=g-import-not-at-top
    imageio_ffmpeg.get_ffmpeg_exe()
  except (ImportError, RuntimeError):
    if requested == "mp4":
      raise ReverieError("--video-format mp4: imageio-ffmpeg is not installed; "
                         "pip install imageio-ffmpeg, or use --video-format gif") from None
    return "gif"
  return "mp4"


def make_rendering_env(env_id: str, num_envs: int) -> BatchedEnv:
  """`num_envs` lanes of `env_id` made with render_mode='rgb_array'.

  Raises:
    UnknownEnvironment: the id is not usable at all.
    ReverieError: the environment cannot be made to render.
  """
  os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # pygame's renderers open a sound device
  env_spaces(env_id)  # an unknown id is answered as without --video
  try:
    with _gymnasium_notes_off():  # the error below says it in one line
      return make_batched_env(env_id, num_envs, render=True)
  except Exception as e:  # pylint: disable=broad-except  (e.g. no render_mode argument)
    raise ReverieError(f"--video: {env_id} cannot be made with render_mode='rgb_array' "
                       f"({_first_line(e)}); evaluate without --video") from None


def record_episodes(env: BatchedEnv, policy: Callable[[np.ndarray], np.ndarray], seed: int,
                    directory: pathlib.Path, fmt: str, fps: Optional[int],
                    env_id: str) -> Episodes:
  """One episode per lane, as `run_episodes`; lane i is written to episode_<i>.<fmt>.

  Frames are the first observation's and the one after every step of the
  episode, the last one showing where it ended. `env` must be made with
  render=True.

  Raises:
    ReverieError: the environment gives no RGB frames.
  """
  lanes = env.num_envs
  observation = env.reset(seed=seed)
  with _gymnasium_notes_off():  # its env checker looks at the first frame only
    frames = _frames(env, env_id)
  writers = [_writer(directory / f"episode_{i}.{fmt}", fmt, fps or DEFAULT_FPS)
             for i in range(lanes)]
  returns, lengths = np.zeros(lanes), np.zeros(lanes, np.int64)
  running = np.ones(lanes, bool)
  try:
    for i in range(lanes):
      writers[i].append_data(frames[i])
    while running.any():
      step = env.step(np.asarray(policy(observation)))
      returns += step.reward * running
      lengths += running
      frames = _frames(env, env_id)
      for i in np.flatnonzero(running):
        writers[i].append_data(frames[i])
      running &= ~(step.terminated | step.truncated)
      observation = step.observation
  finally:
    for writer in writers:
      writer.close()
  return Episodes(returns.tolist(), lengths.tolist(), seed)


def _frames(env: BatchedEnv, env_id: str) -> List[np.ndarray]:
  """Every lane's frame, cut to even sides (H.264's yuv420p needs them)."""
  try:
    frames = env.render()
  except Exception as e:  # pylint: disable=broad-except  (envs raise anything from render)
    raise ReverieError(f"--video: {env_id} cannot render ({_first_line(e)}); "
                       "evaluate without --video") from None
  if frames is None or len(frames) != env.num_envs or any(
      not isinstance(f, np.ndarray) or f.ndim != 3 or f.shape[-1] != 3 for f in frames):
    raise ReverieError(f"--video: {env_id} gives no RGB frames with render_mode='rgb_array'; "
                       "evaluate without --video")
  return [f[:f.shape[0] // 2 * 2, :f.shape[1] // 2 * 2] for f in frames]


def _writer(path: pathlib.Path, fmt: str, fps: int):
  import imageio.v2 as imageio  # pylint: disable=g-import-not-at-top
  path.parent.mkdir(parents=True, exist_ok=True)
  if fmt == "mp4":
    # macro_block_size=1: keep the frame size (the frames are cut to even sides).
    return imageio.get_writer(path, fps=fps, macro_block_size=1)
  return imageio.get_writer(path, mode="I", duration=1000 / fps, loop=0)


@contextlib.contextmanager
def _gymnasium_notes_off():
  """Hides gymnasium's UserWarnings about render modes and fps."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    yield


def _first_line(error: Exception) -> str:
  message = str(error).strip().splitlines()
  return f"{type(error).__name__}: {message[0]}" if message else type(error).__name__
