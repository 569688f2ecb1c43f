"""The installed console script `bayesim`, run in a subprocess as a user runs it: each problem a
newcomer met (issue 20) reproduced, and what it does now — exit code, the number of stderr lines,
and that nothing was written."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_dataset

CONSOLE = Path(sys.executable).parent / "bayesim"


def checkpoint_experiment(path: Path) -> dict:
    """The experiment config stored in a checkpoint."""
    from bayesim.bnn.checkpoint import load_checkpoint

    return load_checkpoint(path).metadata["experiment"]
REPO = Path(__file__).resolve().parents[1]


def bayesim(*args: object, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(CONSOLE), *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **(env or {})}, timeout=600, check=False)


def assert_refused(done: subprocess.CompletedProcess, pattern: str, out: Path | None = None
                   ) -> None:
    """Exit 2, exactly one stderr line naming the problem, no traceback, nothing written."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("bayesim: error: "), done.stderr
    assert pattern in lines[0], lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    if out is not None:
        assert not out.exists() or not any(out.iterdir())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A tiny MLP trained on synthetic data by the console script, and the environment it
    needs."""
    root = tmp_path_factory.mktemp("console")
    write_dataset(root / "data" / "mnist", "digits")
    write_dataset(root / "data" / "fashion-mnist", "garments", compress=False)
    env = {"BAYESIM_DATA": str(root / "data"), "BAYESIM_CACHE": str(root / "cache")}
    tiny = ["model.arch='mlp'", "model.hidden=[16]", "train.epochs=1", "train.batch_size=64",
            "eval.n_samples=3", "data.ambiguous_test_images=20"]
    done = bayesim("train", "--config", "experiments/dirty_mnist_lenet.toml", "--out",
                   root / "run", "-q", *[a for t in tiny for a in ("--set", t)], env=env)
    assert done.returncode == 0, done.stderr
    return root / "run" / "model.safetensors", env


@pytest.mark.parametrize("command,key,what", [
    ("simulate", "train.epochs=5", "[train]"),     # the example its own --help used to give
    ("evaluate", "model.prior_std=0.1", "[model]"),
    ("quantize", "hardware.adc_bits=6", "[hardware]"),
    ("quantize", "train.epochs=3", "train.epochs"),    # QAT runs quant.qat_epochs
])
def test_a_set_key_the_command_does_not_use_is_refused(
        command: str, key: str, what: str, checkpoint: tuple[Path, dict],
        tmp_path: Path) -> None:
    path, env = checkpoint
    out = tmp_path / "out"
    done = bayesim(command, "--checkpoint", path, "--out", out, "-q", "--set", key, env=env)
    assert_refused(done, f"--set {key}: {command} does not use {what}; it takes keys of", out)


@pytest.mark.parametrize("argv,what", [
    (["demo", "--set", "hardware.device='rram_lin2023'"], "hardware.device"),  # its chips set it
    (["train", "--config", "experiments/dirty_mnist_lenet.toml", "--set",
      "sharing.n_clusters=8"], "[sharing]"),
])
def test_keys_the_demo_and_train_would_ignore_are_refused(argv: list[str], what: str,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert_refused(bayesim(*argv, "--out", out, "-q"), f"does not use {what}", out)


def test_the_keys_fine_tuning_reads_are_accepted(checkpoint: tuple[Path, dict],
                                                 tmp_path: Path) -> None:
    """simulate --train-constrained reads quant.qat_lr and train.batch_size; quantize reads
    train.batch_size: the key check lets them through, and they take effect."""
    path, env = checkpoint
    done = bayesim("simulate", "--checkpoint", path, "--out", tmp_path / "c", "-q",
                   "--train-constrained", 1, "--samples", 2, "--set", "quant.qat_lr=3e-4",
                   "--set", "train.batch_size=32", "--set", "hardware.mapping=M1",
                   "--set", "hardware.decomposition_inputs=0", env=env)
    assert done.returncode == 0, done.stderr
    stored = checkpoint_experiment(tmp_path / "c" / "model.safetensors")
    assert stored["quant"]["qat_lr"] == 3e-4 and stored["train"]["batch_size"] == 32
    done = bayesim("quantize", "--checkpoint", path, "--out", tmp_path / "q", "-q",
                   "--qat-epochs", 1, "--set", "train.batch_size=32", env=env)
    assert done.returncode == 0, done.stderr


def test_an_out_file_is_refused_before_any_work(checkpoint: tuple[Path, dict],
                                                tmp_path: Path) -> None:
    path, env = checkpoint
    blocker = tmp_path / "afile"
    blocker.write_text("keep me")
    done = bayesim("simulate", "--checkpoint", path, "--out", blocker, env=env)
    assert_refused(done, "is a file; give a directory")
    assert blocker.read_text() == "keep me"
    done = bayesim("devices", "plot", "pcm_ibm_2020", "--out", blocker / "x.png")
    assert_refused(done, "nothing can be written under it")


def test_a_unit_in_a_value_gets_a_unit_hint_and_a_toml_error_a_quoting_hint(
        checkpoint: tuple[Path, dict], tmp_path: Path) -> None:
    path, env = checkpoint
    out = tmp_path / "out"
    done = bayesim("simulate", "--checkpoint", path, "--out", out, "--set",
                   "hardware.drift_time=1day", env=env)
    assert_refused(done, "give a plain number of seconds, e.g. 3600 for 1 h, 86400 for 1 day",
                   out)
    bad = tmp_path / "bad.toml"
    bad.write_text("[hardware]\ndevice = pcm_ibm_2020\n")
    done = bayesim("simulate", "--checkpoint", path, "--out", out, "--config", bad, env=env)
    assert_refused(done, 'text values need quotes: device = "pcm_ibm_2020"', out)
    done = bayesim("simulate", "--checkpoint", path.parent, "--out", out, env=env)
    assert_refused(done, "is a directory (it holds model.safetensors); give the file", out)


def test_help_keeps_brackets_names_types_in_words_and_gives_an_example() -> None:
    done = bayesim("simulate", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "TOML with [hardware] (and optionally [eval], [data], [cost])" in text
    assert "--set KEY=VALUE" in text and "--samples S" in text
    assert "hardware.drift_time=86400 (seconds)" in text
    assert "Example:" in text and "bayesim simulate --checkpoint" in text
    for markup in ("<bool>", "<list[str]>", "<int>", "<path>"):
        assert markup not in done.stdout
    plot = " ".join(bayesim("plot", "-h").stdout.split())
    assert "[[plots]]" in plot and "SWEEP_DIR" in plot and "{out}" not in plot
    assert "[default: 0]" in text  # --train-constrained


def test_version() -> None:
    from bayesim import __version__
    from bayesim.provenance import provenance

    done = bayesim("--version")
    commit = provenance()["git_commit"]
    expected = f"bayesim {__version__}" + (f" (git {commit[:12]})" if commit else "")
    assert done.returncode == 0 and done.stdout.strip() == expected


def test_json_on_data_and_devices(checkpoint: tuple[Path, dict]) -> None:
    _, env = checkpoint
    info = json.loads(bayesim("data", "info", "--json", env=env).stdout)
    assert {row["dataset"] for row in info["datasets"]} >= {"mnist", "fashion-mnist"}
    cards = json.loads(bayesim("devices", "list", "--json").stdout)["cards"]
    pcm = next(c for c in cards if c["name"] == "pcm_ibm_2020")
    assert pcm["g_max_uS"] == 25
    shown = json.loads(bayesim("devices", "show", "pcm_ibm_2020", "--json").stdout)
    names = [p["parameter"] for p in shown["parameters"]]
    assert "range.calibrated_g" in names and len(names) == len(set(names))
    assert all("unit" in p and "source" in p for p in shown["parameters"])


def test_simulate_json_summary_with_verdict_then_compare(checkpoint: tuple[Path, dict],
                                                        tmp_path: Path) -> None:
    """--json leaves stdout pure JSON (rows, verdict, plots); compare reads the runs, prints
    their table and writes the figure as PNG and PDF."""
    path, env = checkpoint
    done = bayesim("simulate", "--checkpoint", path, "--out", tmp_path / "chip", "-q", "--json",
                   "--set", "hardware.decomposition_inputs=0", env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    (row,) = summary["reports"]
    assert row["kind"] == "analog" and row["verdict"]["status"] in ("ok", "warning")
    assert set(row["verdict"]["differences"]) >= {"accuracy", "auroc_epistemic"}
    assert all(Path(p).is_file() for p in summary["plots"])
    done = bayesim("evaluate", "--checkpoint", path, "--out", tmp_path / "sw", "-q", env=env)
    assert done.returncode == 0, done.stderr
    done = bayesim("compare", tmp_path / "sw", tmp_path / "chip", "--out", tmp_path / "cmp")
    assert done.returncode == 0, done.stderr
    assert "analog M3 pcm_ibm_2020" in done.stdout and "fp32" in done.stdout
    for name in ("comparison.png", "comparison.pdf", "comparison.json"):
        assert (tmp_path / "cmp" / name).stat().st_size > 0
    rows = json.loads((tmp_path / "cmp" / "comparison.json").read_text())["runs"]
    assert [r["kind"] for r in rows] == ["fp32", "analog"]
    done = bayesim("compare", tmp_path / "sw", tmp_path / "nothing", "--out", tmp_path / "c2")
    assert_refused(done, "nothing is not a directory", tmp_path / "c2")


def test_devices_plot_writes_png_and_pdf(tmp_path: Path) -> None:
    done = bayesim("devices", "plot", "rram_lin2023", "--out", tmp_path / "rram.png")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "rram.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "rram.pdf").read_bytes()[:4] == b"%PDF"


def test_a_directory_where_a_file_goes_is_named(checkpoint: tuple[Path, dict],
                                                tmp_path: Path) -> None:
    path, env = checkpoint
    out = tmp_path / "out"
    done = bayesim("simulate", "--checkpoint", path, "--out", out, "--config", tmp_path, env=env)
    assert_refused(done, "is a directory; give the TOML file", out)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_out_is_refused_before_any_work(checkpoint: tuple[Path, dict],
                                                      tmp_path: Path) -> None:
    path, env = checkpoint
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    done = bayesim("simulate", "--checkpoint", path, "--out", locked / "run", env=env)
    assert_refused(done, "is not writable")
