"""Loads a run's config: YAML merged into the dataclass schemas.

OmegaConf structured configs give unknown keys, types and `a.b=c` overrides;
the dataclasses' `__post_init__` gives range checks. Every error becomes one
`ReverieError` line naming the key, where it came from and what to do.
"""

import dataclasses
import difflib
import importlib.util
import pathlib
import re
from typing import Any, Iterator, List, Sequence, Tuple

import omegaconf
from omegaconf import OmegaConf
import yaml

from reverie.launch.config_schema import AGENT_CONFIGS, Config
from reverie.launch.errors import ReverieError


@dataclasses.dataclass
class LoadedConfig:
  """A config checked against the schema.

  Attributes:
    config: The dataclass tree.
    name: The config's name (its file name without .yaml).
    source: Where the YAML came from.
  """

  config: Config
  name: str
  source: str

  def to_yaml(self) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(self.config))


def find_config(name_or_path: str) -> pathlib.Path:
  """A path as given, or a bare name looked up in ./configs/ then Reverie's own configs/."""
  path = pathlib.Path(name_or_path)
  if path.is_file():
    return path
  if path.suffix not in (".yaml", ".yml") and len(path.parts) == 1:
    local = pathlib.Path("configs") / f"{name_or_path}.yaml"
    if local.is_file():
      return local
    for folder in _packaged_config_dirs():
      if (folder / f"{name_or_path}.yaml").is_file():
        return folder / f"{name_or_path}.yaml"
  raise ReverieError(
      f"config {name_or_path!r} not found: give a YAML path or a name from configs/ "
      f"({', '.join(available_configs())})")


def available_configs() -> List[str]:
  names = {p.stem for p in pathlib.Path("configs").glob("*.yaml")}
  for folder in _packaged_config_dirs():
    names |= {p.stem for p in folder.glob("*.yaml")}
  return sorted(names)


def _packaged_config_dirs() -> List[pathlib.Path]:
  """The configs/ folder that ships inside the installed package."""
  spec = importlib.util.find_spec("reverie.configs")
  return [pathlib.Path(p) for p in (spec.submodule_search_locations or [])] if spec else []


def load_config(name_or_path: str, overrides: Sequence[str] = ()) -> LoadedConfig:
  """Reads a YAML config, applies `--set` overrides and checks every value.

  Args:
    name_or_path: A YAML path or a name from configs/.
    overrides: `key=value` strings; values are YAML scalars or lists.

  Returns:
    The checked config.

  Raises:
    ReverieError: naming the key, the file or override, and what to do.
  """
  path = find_config(name_or_path)
  data = _read_yaml(path)
  sets = [_parse_override(item) for item in overrides]
  return load_config_data(data, sets, name=path.stem, source=str(path))


def load_config_data(data: dict, sets: Sequence[Tuple[str, str]] = (), *,
                     name: str, source: str) -> LoadedConfig:
  """Like `load_config` for YAML already read (e.g. a run's config.yaml)."""
  kind = dict(sets).get("agent.kind") or (data.get("agent") or {}).get("kind", "dqn")
  if kind not in AGENT_CONFIGS:
    raise ReverieError(f"agent.kind: unknown agent {kind!r} in {source}; "
                       f"choose one of {', '.join(AGENT_CONFIGS)}")
  schema = OmegaConf.structured(Config(agent=AGENT_CONFIGS[kind]()))
  cfg = _merge(schema, data, source)
  for key, value in sets:
    cfg = _merge(cfg, OmegaConf.from_dotlist([f"{key}={value}"]), f"--set {key}={value}")
  return LoadedConfig(_to_object(cfg, source, dict(sets)), name, source)


def _read_yaml(path: pathlib.Path) -> dict:
  try:
    data = yaml.safe_load(path.read_text())
  except yaml.YAMLError as e:
    mark = getattr(e, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark else str(path)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    raise ReverieError(f"{where}: malformed YAML ({problem}); fix the file") from None
  except OSError as e:
    raise ReverieError(f"cannot read config {path}: {e.strerror}") from None
  if data is None:
    return {}
  if not isinstance(data, dict):
    raise ReverieError(f"{path}: a config is a YAML mapping of sections, got {type(data).__name__}")
  return data


def _parse_override(item: str) -> Tuple[str, str]:
  key, sep, value = item.partition("=")
  if not sep or not key.strip():
    raise ReverieError(f"--set {item!r}: expected KEY=VALUE, e.g. --set learner.batch_size=128")
  return key.strip(), value


def _merge(cfg, other, source: str):
  try:
    return OmegaConf.merge(cfg, other)
  except omegaconf.errors.ConfigKeyError as e:
    raise ReverieError(_unknown_key_message(cfg, e, source)) from None
  except omegaconf.errors.ValidationError as e:
    msg = str(e).splitlines()[0]
    raise ReverieError(f"{e.full_key}: {msg} (in {source}); `reverie config` shows each key's type") from None
  except omegaconf.errors.OmegaConfBaseException as e:
    raise ReverieError(f"{getattr(e, 'full_key', '?')}: {str(e).splitlines()[0]} (in {source})") from None


def _unknown_key_message(cfg, error, source: str) -> str:
  full_key = error.full_key or str(error.key)
  parent_key, _, key = full_key.rpartition(".")
  parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
  known = list(parent.keys()) if isinstance(parent, omegaconf.DictConfig) else []
  close = difflib.get_close_matches(key, known, n=1)
  hint = f"did you mean {'.'.join(filter(None, [parent_key, close[0]]))}?" if close else (
      f"known keys: {', '.join(known)}")
  return f"unknown config key {full_key!r} in {source}; {hint} (`reverie config` lists every key)"


def _type_name(ref_type) -> str:
  if isinstance(ref_type, type):
    return ref_type.__name__
  return str(ref_type).replace("typing.", "")


def _to_object(cfg, source: str, sets: dict) -> Config:
  try:
    return OmegaConf.to_object(cfg)
  except (ValueError, omegaconf.errors.OmegaConfBaseException) as e:
    cause = e.__cause__ or e
    match = re.match(r"(\w+): (.*)", str(cause).splitlines()[0])
    section = _failing_section(cfg)
    if not match or section is None:
      raise ReverieError(f"invalid config in {source}: {str(cause).splitlines()[0]}") from None
    key = f"{section}.{match.group(1)}" if section else match.group(1)
    where = f"--set {key}={sets[key]}" if key in sets else source
    raise ReverieError(f"{key}: {match.group(2)} (in {where})") from None


def _failing_section(cfg):
  """The first section whose dataclass refuses its values ('' for the top)."""
  for name in cfg.keys():
    node = cfg[name]
    if isinstance(node, omegaconf.DictConfig):
      try:
        OmegaConf.to_object(node)
      except (ValueError, omegaconf.errors.OmegaConfBaseException):
        return name
  return ""


def describe(config: Config) -> Iterator[Tuple[str, Any, str, str]]:
  """Every leaf key of the config: (key, value, type, one-line doc)."""
  yield from _describe(config, "")


def _describe(obj, prefix: str):
  docs = field_docs(type(obj))
  for field in dataclasses.fields(obj):
    value = getattr(obj, field.name)
    key = f"{prefix}{field.name}"
    if dataclasses.is_dataclass(value):
      yield from _describe(value, key + ".")
    else:
      yield key, value, _type_name(field.type), docs.get(field.name, "")


def field_docs(cls) -> dict:
  """The one-line docs of a dataclass's fields, from its Attributes section."""
  docs, current = {}, None
  text = (cls.__doc__ or "").split("Attributes:", 1)
  for line in text[1].splitlines() if len(text) > 1 else []:
    match = re.match(r"\s{4}(\w+): (.*)", line)
    if match:
      current = match.group(1)
      docs[current] = match.group(2).strip()
    elif current and line.strip():
      docs[current] += " " + line.strip()
  return docs
