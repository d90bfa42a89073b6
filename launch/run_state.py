"""What the roles of one local run share: counters, the stop signal, the last eval."""

import dataclasses
import threading
from typing import List, Optional


@dataclasses.dataclass
class RunState:
  """Counters the roles update and the launcher and progress line read.

  Attributes:
    max_env_steps: The run's env step budget.
    actor_count: How many actors collect (the progress line's rate is their sum).
  """

  max_env_steps: int
  actor_count: int = 1
  env_steps: int = 0
  episodes: int = 0
  recent_returns: List[float] = dataclasses.field(default_factory=list)
  env_steps_per_second: float = 0.0
  train_step: int = 0
  learner_steps_per_second: float = 0.0
  evals: List[dict] = dataclasses.field(default_factory=list)
  solved_weights: Optional[list] = None
  stop_reason: Optional[str] = None
  error: Optional[BaseException] = None
  interrupted: bool = False
  hold_actors: bool = False
  # Where each role process runs, {"<role>_<i>": {"node", "pid", "restarts"}}, when the roles
  # are processes (Ray, by hand); status.json keeps it.
  roles: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    self.lock = threading.Lock()
    self.stop = threading.Event()
    self.collection_done = threading.Event()
    self.actors_released = threading.Event()

  def actors_should_stop(self) -> bool:
    """Whether actors stop collecting now.

    With `hold_actors` (learners in other processes that wait for data inside
    a collective step) actors collect until the launcher releases them, after
    the learners have stopped; otherwise at the stop or the end of the budget.
    """
    if self.hold_actors:
      return self.actors_released.is_set()
    return self.stop.is_set() or self.collection_done.is_set()

  def add_env_steps(self, steps: int, returns: List[float]) -> int:
    with self.lock:
      self.env_steps += steps
      if returns:
        self.episodes += len(returns)
        self.recent_returns = (self.recent_returns + returns)[-100:]
      if self.env_steps >= self.max_env_steps:
        self.collection_done.set()
      return self.env_steps

  def request_stop(self, reason: str) -> None:
    with self.lock:
      if self.stop_reason is None:
        self.stop_reason = reason
    self.stop.set()

  def interrupt(self, reason: str) -> None:
    """Ctrl-C or SIGTERM: the roles stop, the learner saves a checkpoint, nothing is exported."""
    self.interrupted = True
    self.request_stop(reason)

  def fail(self, error: BaseException) -> None:
    with self.lock:
      if self.error is None:
        self.error = error
    self.request_stop(f"failed: {error}")

  @property
  def last_return(self) -> Optional[float]:
    returns = self.recent_returns[-20:]
    return sum(returns) / len(returns) if returns else None

  @property
  def best_eval(self) -> Optional[float]:
    return max((e["avg_return"] for e in self.evals), default=None)
