"""Names every role agrees on: Reverb tables, variable keys, run directory paths."""

import dataclasses
import pathlib

from tf_agents.experimental.distributed import reverb_variable_container as rvc

EXPERIENCE_TABLE = "experience"
PPO_TRAIN_TABLE = "ppo_train"  # a queue: rollouts, each read once
PPO_NORMALIZATION_TABLE = "ppo_normalization"  # the same rollouts, for the normalizers
VARIABLES_TABLE = rvc.DEFAULT_TABLE
POLICY_KEY = rvc.POLICY_KEY
TRAIN_STEP_KEY = rvc.TRAIN_STEP_KEY

ROLES = ("replay_server", "actor", "learner", "evaluator")


def ppo_tables(worker: int, workers: int, normalized: bool = True):
  """(training queue, normalization queue or None) of one learner worker.

  With several learner workers (strategy.kind multi_worker) every worker has
  its own pair, and actors write each rollout into all of them: a worker
  trains on its share of the lanes and updates its normalizers from all of
  them, so no worker waits on data another one took. Without normalizers
  (`normalized` False: agent.normalize_observations and normalize_rewards
  both off) there is no normalization queue.
  """
  if workers == 1:
    train, normalization = PPO_TRAIN_TABLE, PPO_NORMALIZATION_TABLE
  else:
    train, normalization = f"{PPO_TRAIN_TABLE}_{worker}", f"{PPO_NORMALIZATION_TABLE}_{worker}"
  return train, normalization if normalized else None


def all_ppo_tables(workers: int, normalized: bool = True):
  """Every PPO queue of a run, training queues first."""
  pairs = [ppo_tables(worker, workers, normalized) for worker in range(workers)]
  return [train for train, _ in pairs] + [norm for _, norm in pairs if norm is not None]


@dataclasses.dataclass(frozen=True)
class RunDir:
  """The paths of one run directory (DESIGN.md, 'The run directory')."""

  root: pathlib.Path

  def __post_init__(self):
    object.__setattr__(self, "root", pathlib.Path(self.root))

  config = property(lambda self: self.root / "config.yaml")
  lineage = property(lambda self: self.root / "lineage.json")
  status = property(lambda self: self.root / "status.json")
  checkpoints = property(lambda self: self.root / "checkpoints")
  replay = property(lambda self: self.root / "replay")
  policies = property(lambda self: self.root / "policies")
  greedy_policy = property(lambda self: self.root / "policies" / "greedy")
  collect_policy = property(lambda self: self.root / "policies" / "collect")
  greedy_tflite = property(lambda self: self.root / "policies" / "greedy.tflite")
  eval = property(lambda self: self.root / "eval")
  # The weights the evaluator confirmed at run.stop_at_return, for the learner's final export
  # when the two run in different processes (launch/hub.py).
  solved_weights = property(lambda self: self.root / "solved_weights.npz")
  # Where a by-hand replay server says its Reverb server and coordinator listen (launch/roles.py).
  addresses = property(lambda self: self.root / "addresses.json")

  def policy_at(self, train_step: int) -> pathlib.Path:
    return self.root / "policies" / "steps" / str(train_step)

  def tensorboard(self, role: str, index: int = 0) -> pathlib.Path:
    return self.root / "tb" / (f"{role}_{index}" if role == "actor" else role)

  def log(self, role: str, index: int = 0) -> pathlib.Path:
    return self.root / "logs" / f"{role}_{index}.log"

  def pid(self, role: str, index: int = 0) -> pathlib.Path:
    return self.root / "pids" / f"{role}_{index}"

  def is_run(self) -> bool:
    return self.config.is_file()
