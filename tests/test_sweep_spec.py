"""Sweep specs: deterministic expansion, validation of every point, point identity."""

from pathlib import Path

import pytest

from bayesim.errors import ConfigError
from bayesim.sweep.spec import expand, load_spec, spec_hash

SPEC = """
name = "t"
seeds = [0, 1]
[base]
data.ood_limit = 500
[grid]
"hardware.adc_bits" = [4, 8]
"hardware.mapping" = ["M1", "M3"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def test_grid_expands_in_a_fixed_order_with_unique_ids(tmp_path: Path) -> None:
    points = expand(load_spec(_write(tmp_path, SPEC)))
    assert len(points) == 2 * 2 * 2
    assert [(p.values["hardware.adc_bits"], p.values["hardware.mapping"], p.seed)
            for p in points[:3]] == [(4, "M1", 0), (4, "M1", 1), (4, "M3", 0)]
    assert points[0].config["hardware"]["adc_bits"] == 4
    assert points[0].config["data"]["ood_limit"] == 500
    assert points[1].config["seed"] == 1
    assert len({p.id for p in points}) == len(points)
    again = expand(load_spec(_write(tmp_path, SPEC)))
    assert spec_hash(again) == spec_hash(points)
    other = expand(load_spec(_write(tmp_path, SPEC), ["seeds=[0]"]))
    assert spec_hash(other) != spec_hash(points) and len(other) == 4


def test_random_mode_is_reproducible_and_in_range(tmp_path: Path) -> None:
    text = """
mode = "random"
n_random = 6
random_seed = 3
[random]
"hardware.read_noise_scale" = { low = 0.25, high = 4.0, log = true }
"hardware.adc_bits" = { choices = [4, 6, 8] }
"""
    a = expand(load_spec(_write(tmp_path, text)))
    b = expand(load_spec(_write(tmp_path, text)))
    assert [p.id for p in a] == [p.id for p in b] and len(a) == 6
    for p in a:
        assert 0.25 <= p.config["hardware"]["read_noise_scale"] <= 4.0
        assert p.config["hardware"]["adc_bits"] in (4, 6, 8)


@pytest.mark.parametrize(("text", "message"), [
    ('[grid]\n"hardware.adc_bitz" = [4]\n', "hardware.adc_bitz"),
    ('[grid]\n"hardware.adc_bits" = []\n', "empty"),
    ('mode = "grid"\n', "at least one axis"),
    ('[grid]\n"hardware.mapping" = ["M9"]\n', "mapping"),
    ('mode = "random"\n[random]\n"hardware.read_noise_scale" = { low = 2.0, high = 1.0 }\n',
     "low < high"),
])
def test_bad_specs_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        expand(load_spec(_write(tmp_path, text)))


def test_several_grids_references_and_chip_seeds(tmp_path: Path) -> None:
    text = """
seeds = [0, 1]
seed_key = "hardware.chip_seed"
[references]
fp32 = {}
digital = { "quant.strategy" = "VPQ", "quant.bits" = 3 }
[base]
quant.strategy = "fp"
[[grid]]
"hardware.adc_bits" = [4, 8]
[[grid]]
"hardware.adc_bits" = [8, 10]
"""
    points = expand(load_spec(_write(tmp_path, text)))
    assert [p.run for p in points] == ["fp32", "digital"] + ["analog"] * 6
    assert [p.config["hardware"]["adc_bits"] for p in points[2:]] == [4, 4, 8, 8, 10, 10]
    assert [p.config["hardware"]["chip_seed"] for p in points[2:4]] == [0, 1]
    assert {p.config["seed"] for p in points} == {0}  # one trained model
    assert points[1].config["quant"]["strategy"] == "VPQ" and points[1].config["quant"]["bits"] == 3
    assert points[0].config["quant"]["strategy"] == "fp"
    assert len({p.id for p in points}) == len(points)
    with pytest.raises(ConfigError, match="hardware.chip_sed"):
        expand(load_spec(_write(tmp_path, text.replace("chip_seed", "chip_sed"))))
    with pytest.raises(ConfigError, match="references"):
        expand(load_spec(_write(tmp_path, text.replace("fp32 = {}", "fp64 = {}"))))
