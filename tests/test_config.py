import tomllib
from pathlib import Path

import pytest

from bayesim.config import ExperimentConfig, apply_overrides, load_config, parse_override
from bayesim.errors import ConfigError
from bayesim.sweep.spec import expand, load_spec

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_and_toml(tmp_path: Path) -> None:
    assert load_config().model.arch == "lenet5"
    path = tmp_path / "c.toml"
    path.write_text('seed = 3\n[model]\narch = "mlp"\nhidden = [64, 32]\n[train]\nlr = 0.01\n')
    cfg = load_config(path)
    assert (cfg.seed, cfg.model.arch, cfg.model.hidden, cfg.train.lr) == (3, "mlp", [64, 32], 0.01)


def test_overrides_are_typed_and_nested(tmp_path: Path) -> None:
    assert parse_override("train.epochs=5") == (["train", "epochs"], 5)
    assert parse_override("model.hidden=[8, 4]") == (["model", "hidden"], [8, 4])
    assert parse_override("data.benchmark=dirty-fashion") == (["data", "benchmark"],
                                                              "dirty-fashion")
    cfg = load_config(None, ["train.lr=0.5", "model.arch='mlp'", "eval.n_samples=7"])
    assert (cfg.train.lr, cfg.model.arch, cfg.eval.n_samples) == (0.5, "mlp", 7)
    base = {"a": {"b": 1}}
    assert apply_overrides(base, ["a.c=2"]) == {"a": {"b": 1, "c": 2}} and base == {"a": {"b": 1}}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.foo=1"], "unknown key 'data.foo'.*allowed keys here: ambiguous_dir"),
        (["bogus=1"], "unknown key 'bogus'.*allowed keys here: cost, data, eval, hardware, model"),
        (["train.epochs='many'"], "invalid value for 'train.epochs'.*'many'.*valid integer"),
        (["model.prior_std=-1"], "invalid value for 'model.prior_std'.*-1.*greater than 0"),
        (["eval.n_samples=0"], "invalid value for 'eval.n_samples'.*greater than or equal to 1"),
        (["model.arch=vgg"],
         "invalid value for 'model.arch'.*unknown architecture 'vgg'.*lenet5, mlp, resnet"),
        (["noequals"], "must look like section.key=value"),
        (["train.epochs.x=1"], "invalid value for 'train.epochs'.*valid integer"),
        (["train.epochs=3", "train.epochs.x=1"], "'epochs' is a value, not a section"),
    ],
)
def test_bad_values_name_key_value_and_allowed(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[model\narch=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")
    (tmp_path / "typo.toml").write_text("[train]\nepoch = 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train.epoch' in .*typo.toml"):
        load_config(tmp_path / "typo.toml")


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.toml")),
                         ids=lambda p: p.name)
def test_shipped_experiment_configs_validate(path: Path) -> None:
    data = tomllib.loads(path.read_text())
    if "base" in data:  # a general sweep spec: every point validates
        assert expand(load_spec(path))
    else:
        assert isinstance(load_config(path), ExperimentConfig)
