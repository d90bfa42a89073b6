"""Run, actor, replay, learner, strategy and eval config: the schema.

Every field has a one-line doc in its class's Attributes section; `reverie
config` prints them. Range checks live in `__post_init__`, raising ValueError
with the field's name first.
"""

import dataclasses
from typing import Any, Optional, Union

from reverie.agents.config_checks import check as _check
from reverie.agents.dqn.config import DqnConfig
from reverie.agents.ppo.config import PpoConfig
from reverie.envs.config import EnvConfig

AGENT_CONFIGS = {"dqn": DqnConfig, "ppo": PpoConfig}
DISCRETE_ACTIONS_ONLY = ("dqn",)
LAUNCHERS = ("local", "ray")
SAMPLERS = ("uniform", "prioritized")
STRATEGY_KINDS = ("default", "one_device", "mirrored", "multi_worker", "tpu")


def _check_at_least_one(section, *fields: str) -> None:
  for field in fields or [f.name for f in dataclasses.fields(section)]:
    value = getattr(section, field)
    _check(value >= 1, field, f"must be >= 1, got {value}")


@dataclasses.dataclass
class RunConfig:
  """How long the run lasts and who launches it.

  Attributes:
    launcher: Who starts the roles: local (one process, Reverb in-process) or ray (a Ray actor per role, docs/cluster.md).
    max_env_steps: Stop after this many env steps (all actors together).
    stop_at_return: Stop once the evaluator's average return reaches this, confirmed on other seeds (null = never).
    ray_address: ray: the cluster to join (null = RAY_ADDRESS, else start a local one).
    bind_address: Where what Reverie itself serves listens (the by-hand coordinator); Reverb cannot choose.
  """

  launcher: str = "local"
  max_env_steps: int = 100_000
  stop_at_return: Optional[float] = None
  ray_address: Optional[str] = None
  bind_address: str = "127.0.0.1"

  def __post_init__(self):
    _check(self.launcher in LAUNCHERS, "launcher",
           f"must be one of {', '.join(LAUNCHERS)}, got {self.launcher}")
    _check_at_least_one(self, "max_env_steps")
    _check(bool(self.bind_address), "bind_address", "must be a host address, e.g. 127.0.0.1")


@dataclasses.dataclass
class ActorConfig:
  """The actors that step environments and write experience.

  Attributes:
    count: Number of actors.
    envs_per_actor: Environments each actor steps together (lanes of one batched policy call).
    weight_update_interval_steps: Env steps of one actor between looks for fresh weights (at most one per 0.05 s; pulled only after a push).
    num_cpus: ray: CPUs Ray reserves for each actor.
    max_restarts: ray: how often Ray restarts a dead actor (-1 = always).
  """

  count: int = 1
  envs_per_actor: int = 16
  weight_update_interval_steps: int = 1_000
  num_cpus: float = 1.0
  max_restarts: int = 10

  def __post_init__(self):
    _check_at_least_one(self, "count", "envs_per_actor", "weight_update_interval_steps")
    _check(self.num_cpus >= 0, "num_cpus", f"must be >= 0, got {self.num_cpus}")
    _check(self.max_restarts >= -1, "max_restarts",
           f"must be >= -1 (-1 = always), got {self.max_restarts}")


@dataclasses.dataclass
class ReplayConfig:
  """The Reverb replay server.

  Attributes:
    port: Port of the Reverb server (null = pick a free one); Reverb listens on every interface.
    max_size: Capacity in transitions; the oldest are dropped first.
    min_size: Transitions stored before the learner may sample.
    samples_per_insert: Transitions sampled per transition inserted, kept by Reverb's rate limiter.
    steps_per_item: Vector steps of one actor in one Reverb item; wider items make sampling cheaper.
    rate_limiter_timeout_seconds: How long the learner waits for data before it checks whether the run ended.
    checkpoint_interval_seconds: Seconds between replay checkpoints in RUN_DIR/replay (one more at shutdown).
    sampler: DQN: uniform, or prioritized by TD error (Schaul et al. 2016; one priority per Reverb item).
    priority_exponent: prioritized: alpha, sampling probability proportional to priority^alpha.
    importance_sampling_exponent: prioritized: beta of the importance weights (N * P)^-beta in the loss.
    num_cpus: ray: CPUs Ray reserves for the replay server.
  """

  port: Optional[int] = None
  max_size: int = 100_000
  min_size: int = 1_000
  samples_per_insert: float = 8.0
  steps_per_item: int = 4
  rate_limiter_timeout_seconds: float = 1.0
  checkpoint_interval_seconds: float = 300.0
  sampler: str = "uniform"
  priority_exponent: float = 0.6
  importance_sampling_exponent: float = 0.4
  num_cpus: float = 1.0

  def __post_init__(self):
    _check(self.num_cpus >= 0, "num_cpus", f"must be >= 0, got {self.num_cpus}")
    _check(self.sampler in SAMPLERS, "sampler",
           f"must be one of {', '.join(SAMPLERS)}, got {self.sampler}")
    _check(0 <= self.priority_exponent <= 1, "priority_exponent",
           f"must be in [0, 1], got {self.priority_exponent}")
    _check(0 <= self.importance_sampling_exponent <= 1, "importance_sampling_exponent",
           f"must be in [0, 1], got {self.importance_sampling_exponent}")
    _check(self.port is None or 1 <= self.port <= 65535, "port",
           f"must be in 1..65535 or null, got {self.port}")
    _check(self.max_size >= 1, "max_size", f"must be >= 1, got {self.max_size}")
    _check(1 <= self.min_size <= self.max_size, "min_size",
           f"must be in 1..max_size ({self.max_size}), got {self.min_size}")
    _check(self.samples_per_insert > 0, "samples_per_insert",
           f"must be > 0, got {self.samples_per_insert}")
    _check(self.steps_per_item >= 1, "steps_per_item", f"must be >= 1, got {self.steps_per_item}")
    _check(self.rate_limiter_timeout_seconds > 0, "rate_limiter_timeout_seconds",
           f"must be > 0, got {self.rate_limiter_timeout_seconds}")
    _check(self.checkpoint_interval_seconds > 0, "checkpoint_interval_seconds",
           f"must be > 0, got {self.checkpoint_interval_seconds}")


@dataclasses.dataclass
class LearnerConfig:
  """The learner that trains the policy.

  Attributes:
    batch_size: Global batch size in transitions, split among replicas.
    steps_per_call: Train steps run inside one graph call. Between calls the learner pushes
      weights and writes its scalars (DQN: at most every 0.05 s and 0.5 s, and after the
      last call; PPO: every policy version).
    checkpoint_interval_steps: Train steps between checkpoints in RUN_DIR/checkpoints.
    keep_checkpoints: How many checkpoints to keep.
    export_interval_steps: Train steps between greedy policy exports to policies/steps/.
    intra_op_threads: TensorFlow threads inside one op (0 = one per core); 1 suits small networks.
    num_cpus: ray: CPUs Ray reserves for the learner (each worker under multi_worker).
    num_gpus: ray: GPUs Ray reserves for the learner (each worker under multi_worker).
  """

  batch_size: int = 64
  steps_per_call: int = 50
  checkpoint_interval_steps: int = 5_000
  keep_checkpoints: int = 3
  export_interval_steps: int = 20_000
  # A DQN CartPole run of 10,000 train steps ([128, 128], batch 256, 2 cores) took
  # 30.6-32.4 s end to end with one thread and 37.4-37.5 s with one per core: splitting
  # small matmuls costs more than it saves.
  intra_op_threads: int = 1
  num_cpus: float = 1.0
  num_gpus: float = 0.0

  def __post_init__(self):
    _check_at_least_one(self, "batch_size", "steps_per_call", "checkpoint_interval_steps",
                        "keep_checkpoints", "export_interval_steps")
    _check(self.num_cpus >= 0, "num_cpus", f"must be >= 0, got {self.num_cpus}")
    _check(self.num_gpus >= 0, "num_gpus", f"must be >= 0, got {self.num_gpus}")
    _check(self.intra_op_threads >= 0, "intra_op_threads",
           f"must be >= 0 (0 = one per core), got {self.intra_op_threads}")


@dataclasses.dataclass
class StrategyConfig:
  """The tf.distribute strategy of the learner (docs/multi_gpu.md).

  Attributes:
    kind: default, one_device, mirrored, multi_worker or tpu.
    devices: one_device: the GPU's index; mirrored: a device count, or all (every GPU).
    workers: Learner processes for multi_worker (Ray Train workers under run.launcher ray).
    tpu_address: TPU name or grpc:// address for tpu (local on a TPU VM).
    gpu_memory_limit_mb: Memory cap per GPU for the learner (null = grow as needed).
    collective_timeout_seconds: multi_worker: how long a collective waits for the other workers.
  """

  kind: str = "default"
  devices: Union[int, str] = 1
  workers: int = 1
  tpu_address: Optional[str] = None
  gpu_memory_limit_mb: Optional[int] = None
  collective_timeout_seconds: float = 300.0

  def __post_init__(self):
    if self.kind not in STRATEGY_KINDS:
      import difflib  # pylint: disable=g-import-not-at-top
      close = difflib.get_close_matches(self.kind, STRATEGY_KINDS, n=1)
      hint = f" (did you mean {close[0]}?)" if close else ""
      raise ValueError(f"kind: unknown strategy {self.kind!r}{hint}; "
                       f"choose one of {', '.join(STRATEGY_KINDS)}")
    if isinstance(self.devices, str):
      _check(self.devices == "all" and self.kind != "one_device", "devices",
             f"must be a number{' or all' if self.kind != 'one_device' else ''}, "
             f"got {self.devices!r}")
    else:
      least = 1 if self.kind == "mirrored" else 0
      _check(self.devices >= least, "devices", f"must be >= {least}, got {self.devices}")
    _check(self.workers >= 1, "workers", f"must be >= 1, got {self.workers}")
    _check(self.kind != "tpu" or bool(self.tpu_address), "tpu_address",
           "tpu needs the TPU's name or grpc:// address ('local' on a TPU VM)")
    _check(self.gpu_memory_limit_mb is None or self.gpu_memory_limit_mb >= 1,
           "gpu_memory_limit_mb", f"must be >= 1 or null, got {self.gpu_memory_limit_mb}")
    _check(self.collective_timeout_seconds > 0, "collective_timeout_seconds",
           f"must be > 0, got {self.collective_timeout_seconds}")


@dataclasses.dataclass
class EvalConfig:
  """The evaluator that scores the newest greedy policy.

  Attributes:
    episodes: Greedy episodes per evaluation, run side by side.
    interval_steps: Env steps between evaluations (at least; a due evaluation waits for
      weights not scored yet).
    seed: Seed of the first evaluation episode; episode i uses seed + i.
    num_cpus: ray: CPUs Ray reserves for the evaluator.
  """

  episodes: int = 20
  interval_steps: int = 5_000
  seed: int = 1_000_000
  num_cpus: float = 1.0

  def __post_init__(self):
    _check_at_least_one(self, "episodes", "interval_steps")
    _check(self.num_cpus >= 0, "num_cpus", f"must be >= 0, got {self.num_cpus}")


@dataclasses.dataclass
class Config:
  """A whole Reverie run.

  Attributes:
    seed: Seed of networks, actors and environments.
    env: Environment.
    agent: Algorithm and its hyperparameters; agent.kind picks the schema.
    run: Length and launcher.
    actor: Actors.
    replay: Replay server.
    learner: Learner.
    strategy: Distribution strategy.
    eval: Evaluator.
  """

  seed: int = 0
  env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
  agent: Any = None
  run: RunConfig = dataclasses.field(default_factory=RunConfig)
  actor: ActorConfig = dataclasses.field(default_factory=ActorConfig)
  replay: ReplayConfig = dataclasses.field(default_factory=ReplayConfig)
  learner: LearnerConfig = dataclasses.field(default_factory=LearnerConfig)
  strategy: StrategyConfig = dataclasses.field(default_factory=StrategyConfig)
  eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)


def learner_workers(config: Config) -> int:
  """Learner processes of the run: strategy.workers under multi_worker, else one."""
  return config.strategy.workers if config.strategy.kind == "multi_worker" else 1


def ppo_frames_per_version(config: Config) -> int:
  """Env steps in one PPO policy version: every actor's rollout on all its lanes."""
  return config.actor.count * config.actor.envs_per_actor * config.agent.rollout_steps


def ppo_normalized(config: Config) -> bool:
  """Whether the PPO learner updates normalizers (and so reads a normalization queue)."""
  return config.agent.normalize_observations or config.agent.normalize_rewards


def check_available(config: Config) -> None:
  """Fails with one line for settings this version accepts in configs but cannot run yet."""
  from reverie.launch.errors import ReverieError  # pylint: disable=g-import-not-at-top
  if config.run.launcher == "ray":
    import importlib.util  # pylint: disable=g-import-not-at-top
    if importlib.util.find_spec("ray") is None:
      raise ReverieError("run.launcher: ray is not installed; install the extra with "
                         "pip install 'reverie[ray]' (docs/cluster.md), or use local")
  if config.agent.kind == "ppo":
    frames = ppo_frames_per_version(config)
    if frames % config.learner.batch_size:
      raise ReverieError(
          f"learner.batch_size: {config.learner.batch_size} does not divide the {frames} env steps "
          f"of one policy version (actor.count x actor.envs_per_actor x agent.rollout_steps); "
          f"PPO's minibatches must cover each version's data exactly")
    workers = learner_workers(config)
    if config.actor.envs_per_actor % workers:
      raise ReverieError(
          f"actor.envs_per_actor: {config.actor.envs_per_actor} lanes do not split among "
          f"{workers} learner workers (strategy.workers); each PPO worker trains on its share "
          f"of every rollout's lanes")


def check_agent_spaces(config: Config, observation_space, action_space) -> None:
  """Fails with one line when the agent cannot act in this environment's spaces."""
  from reverie.launch.errors import ReverieError  # pylint: disable=g-import-not-at-top
  kind, env_id = config.agent.kind, config.env.id
  discrete = type(action_space).__name__ == "Discrete"
  if kind in DISCRETE_ACTIONS_ONLY and not discrete:
    raise ReverieError(f"env.id: {env_id} has a {type(action_space).__name__} action space "
                       f"{action_space}; {kind} needs a Discrete one")
  if kind == "ppo" and discrete and getattr(action_space, "start", 0) != 0:
    raise ReverieError(f"env.id: {env_id} numbers its actions from {action_space.start}; "
                       "ppo takes Discrete actions numbered from 0")
  if type(observation_space).__name__ != "Box":
    raise ReverieError(f"env.id: {env_id} has a {type(observation_space).__name__} observation "
                       "space; Reverie takes Box observations")
