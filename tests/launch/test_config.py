"""Config: schema, overrides, range checks, docs, and the errors users see."""

import dataclasses

import pytest

from reverie.launch.config import describe, field_docs, load_config, load_config_data
from reverie.launch.config_schema import AGENT_CONFIGS, Config
from reverie.launch.errors import ReverieError


def test_default_config_loads_with_overrides():
  loaded = load_config("dqn_cartpole", ["learner.batch_size=128", "agent.fc_layer_params=[32, 32]"])
  assert loaded.config.learner.batch_size == 128
  assert loaded.config.agent.fc_layer_params == [32, 32]
  assert loaded.config.env.id == "CartPole-v1"
  assert loaded.name == "dqn_cartpole"


def test_resolved_yaml_round_trips():
  import yaml
  loaded = load_config("dqn_cartpole", ["seed=7"])
  again = load_config_data(yaml.safe_load(loaded.to_yaml()), name="x", source="config.yaml")
  assert again.config == loaded.config


def test_every_field_has_a_one_line_doc():
  def classes(cls):
    yield cls
    for field in dataclasses.fields(cls):
      if dataclasses.is_dataclass(field.type):
        yield from classes(field.type)
  for cls in [*classes(Config), *AGENT_CONFIGS.values()]:
    docs = field_docs(cls)
    missing = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]
    assert not missing, f"{cls.__name__} fields without a doc: {missing}"


def test_describe_lists_every_leaf_with_type_and_doc():
  rows = {key: (value, kind, doc) for key, value, kind, doc in
          describe(load_config("dqn_cartpole").config)}
  assert rows["learner.batch_size"][1] == "int"
  assert rows["replay.port"][1] == "Optional[int]"
  assert "Adam" in rows["agent.learning_rate"][2]


@pytest.mark.parametrize("override, message", [
    ("learner.batchsize=3", "unknown config key 'learner.batchsize'.*did you mean learner.batch_size"),
    ("learner.batch_size=-1", r"learner.batch_size: must be >= 1, got -1 \(in --set"),
    ("learner.batch_size=abc", "learner.batch_size: .*could not be converted"),
    ("agent.gamma=1.5", r"agent.gamma: must be in \[0, 1\]"),
    ("strategy.kind=mirored", "did you mean mirrored"),
    ("batch_size", "expected KEY=VALUE"),
    ("agent.kind=sac", "unknown agent 'sac'"),
    ("replay.min_size=200000", r"replay.min_size: must be in 1..max_size"),
    ("learner.intra_op_threads=-1", r"learner.intra_op_threads: must be >= 0 \(0 = one per core\)"),
])
def test_bad_values_name_the_key(override, message):
  with pytest.raises(ReverieError, match=message):
    load_config("dqn_cartpole", [override])


def test_malformed_yaml_names_file_and_line(tmp_path):
  path = tmp_path / "broken.yaml"
  path.write_text("seed: 1\nenv:\n  id: [CartPole-v1\nrun: {}\n")
  with pytest.raises(ReverieError, match=r"broken.yaml:\d+: malformed YAML"):
    load_config(str(path))


def test_unknown_key_in_file_names_the_file(tmp_path):
  path = tmp_path / "typo.yaml"
  path.write_text("learner:\n  batch_sise: 32\n")
  with pytest.raises(ReverieError, match="learner.batch_sise' in .*typo.yaml; did you mean"):
    load_config(str(path))


def test_missing_config_lists_the_known_ones():
  with pytest.raises(ReverieError, match="not found.*dqn_cartpole"):
    load_config("no_such_config")
