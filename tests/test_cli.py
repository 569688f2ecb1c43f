"""The `bayesim` command: end to end on tiny data, and every kind of bad input → exit 2, one
line on stderr, no traceback, no output file."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.torch

from bayesim.cli import main
from bayesim.data.idx import write_idx
from tests.conftest import serve_fake_release


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_bad_input(code: int, err: str, out_dir: Path, pattern: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bayesim: error: ") and "Traceback" not in err
    assert pattern in lines[0], lines[0]
    assert not out_dir.exists() or not any(out_dir.iterdir())


def config_file(tmp_path: Path, overrides: list[str]) -> Path:
    """A TOML file holding the tiny overrides (so that --config is exercised too)."""
    lines: dict[str, list[str]] = {}
    for item in overrides:
        key, value = item.split("=", 1)
        section, name = key.split(".")
        lines.setdefault(section, []).append(f"{name} = {value}")
    text = "\n".join(f"[{s}]\n" + "\n".join(v) for s, v in lines.items())
    path = tmp_path / "tiny.toml"
    path.write_text(text + "\n")
    return path


@pytest.fixture
def trained(tmp_path_factory, data_root: Path, tiny_overrides: list[str],
            capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path_factory.mktemp("train")
    cfg = config_file(out, tiny_overrides)
    code, stdout, err = run(["train", "--config", cfg, "--out", out / "run", "-q"], capsys)
    assert code == 0, err
    assert "checkpoint:" in stdout
    return out / "run" / "model.safetensors"


def test_train_then_evaluate(trained: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval"
    code, stdout, err = run(["evaluate", "--checkpoint", trained, "--out", out, "--samples", 5,
                             "-q"], capsys)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["n_samples"] == 5 and report["predictor"]["kind"] == "fp32"
    assert report["in_distribution"]["accuracy"] > 0.5  # the synthetic task is easy
    for name in ("scores.npz", "reliability.png", "uncertainty_hist.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert "AUROC" in stdout
    assert report["same_data_as_training"] is True


def test_evaluate_warns_when_the_data_changed(trained: Path, data_root: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    moved = tmp_path / "moved-mnist"
    shutil.copytree(data_root / "mnist", moved)
    out = tmp_path / "eval"
    code, _, err = run(["evaluate", "--checkpoint", trained, "--out", out, "--samples", 2, "-q",
                        "--set", f"data.mnist_dir='{moved}'"], capsys)
    assert code == 0
    assert err.startswith("bayesim: warning: ") and "may overlap its training data" in err
    assert json.loads((out / "report.json").read_text())["same_data_as_training"] is False


def test_demo_with_overrides(data_root: Path, tiny_overrides: list[str], tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    args = ["demo", "--out", tmp_path / "demo", "-q"]
    for item in tiny_overrides:
        args += ["--set", item]
    code, _, err = run(args, capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert report["training"]["epochs"] == 2
    assert {"in_distribution", "uncertainty", "memory", "calibration"} <= set(report)
    digital = json.loads((tmp_path / "demo" / "digital" / "report.json").read_text())
    assert digital["predictor"]["kind"] == "digital" and digital["predictor"]["label"] == "JQ-4"
    assert digital["memory"]["bits_per_weight"] == 8.0
    assert (tmp_path / "demo" / "digital" / "reliability.png").is_file()
    for name, device in (("analog_pcm", "pcm_ibm_2020"), ("analog_rram", "rram_lin2023")):
        analog = json.loads((tmp_path / "demo" / name / "report.json").read_text())
        assert analog["predictor"]["kind"] == "analog"
        assert analog["hardware"]["device"] == device
        assert analog["n_samples"] == report["n_samples"]
        assert analog["data"] == report["data"]  # same data, same S: one table
        assert (tmp_path / "demo" / name / "sigma_realised.png").is_file()
        # the chip's verdict is against the fp32 row: same model, S, data and seed
        assert analog["reference"]["accuracy"] == report["in_distribution"]["accuracy"]
        judged = analog["verdict"]
        assert judged["status"] == ("warning" if judged["warnings"] else "ok")
        assert judged["differences"]["accuracy"] == pytest.approx(
            analog["in_distribution"]["accuracy"] - report["in_distribution"]["accuracy"],
            abs=2e-6)


def test_quantize_then_evaluate_the_quantized_checkpoint(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "q"
    code, stdout, err = run(["quantize", "--checkpoint", trained, "--out", out, "--strategy",
                             "VPQ", "--bits", 3, "--qat-epochs", 1, "-q"], capsys)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["predictor"]["label"] == "VPQ-3" and report["memory"]["bits_per_weight"] == 6
    assert "VPQ-3" in stdout
    code, _, err = run(["evaluate", "--checkpoint", out / "model.safetensors", "--out",
                        tmp_path / "e", "-q"], capsys)
    assert code == 0, err
    again = json.loads((tmp_path / "e" / "report.json").read_text())
    assert again["predictor"]["label"] == "VPQ-3"  # the quantizers come back with the checkpoint
    assert again["in_distribution"]["accuracy"] == report["in_distribution"]["accuracy"]
    code, _, err = run(["quantize", "--checkpoint", out / "model.safetensors", "--out",
                        tmp_path / "qq"], capsys)
    assert_bad_input(code, err, tmp_path / "qq", "already quantized")


@pytest.mark.parametrize(
    ("args", "pattern"),
    [(["--bits", 17], "less than or equal to 16"), (["--bits", 0], "greater than or equal to 1"),
     (["--strategy", "XQ"], "'fp', 'VPQ', 'SPQ' or 'JQ'"),
     (["--sigma-quantizer", "cubic"], "'log' or 'uniform'")],
)
def test_quantize_bad_arguments(trained: Path, tmp_path: Path, args: list, pattern: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "q"
    code, _, err = run(["quantize", "--checkpoint", trained, "--out", out, *args], capsys)
    assert_bad_input(code, err, out, pattern)


def test_quantize_refuses_zero_sigma(trained: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from bayesim.bnn.checkpoint import load_checkpoint, save_checkpoint

    loaded = load_checkpoint(trained)
    with torch.no_grad():
        loaded.model[1].weight_rho[0, 0] = -200.0  # σ = softplus(−200) = 0 in float32
    meta = {k: v for k, v in loaded.metadata.items()
            if k not in ("format", "model", "versions", "created")}
    bad = save_checkpoint(tmp_path / "zero.safetensors", loaded.model, loaded.model_config, **meta)
    out = tmp_path / "q"
    code, _, err = run(["quantize", "--checkpoint", bad, "--out", out], capsys)
    assert_bad_input(code, err, out, "σ ≤ 0")


def _bad_data_dir(tmp_path: Path, data_root: Path, damage: str) -> Path:
    bad = tmp_path / "bad-mnist"
    shutil.copytree(data_root / "mnist", bad)
    images = bad / "train-images-idx3-ubyte.gz"
    if damage == "truncated":
        write_idx(images, np.zeros((300, 28, 28), np.uint8), compress=False)
        images.write_bytes(images.read_bytes()[:-100])
    elif damage == "magic":
        images.write_bytes(b"\x00\x01\x08\x03" + images.read_bytes()[4:])
    elif damage == "labels":
        write_idx(bad / "train-labels-idx1-ubyte.gz", np.full(300, 12, np.uint8))
    return bad


@pytest.mark.parametrize(
    ("damage", "pattern"),
    [("truncated", "truncated"), ("magic", "wrong magic number"),
     ("labels", "label 12 at index 0 is out of range")],
)
def test_bad_idx_files(damage: str, pattern: str, data_root: Path, tiny_overrides: list[str],
                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _bad_data_dir(tmp_path, data_root, damage)
    cfg = config_file(tmp_path, tiny_overrides)
    out = tmp_path / "out"
    code, _, err = run(["train", "--config", cfg, "--out", out, "--set",
                        f"data.mnist_dir='{bad}'"], capsys)
    assert_bad_input(code, err, out, pattern)


def test_missing_data_directory(data_root: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, _, err = run(["demo", "--out", out, "--set", f"data.fashion_dir='{tmp_path}/nowhere'"],
                       capsys)
    assert_bad_input(code, err, out, "does not exist")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [("[train]\nepohcs = 3\n", "unknown key 'train.epohcs'"),
     ("[train]\nepochs = 'three'\n", "invalid value for 'train.epochs'"),
     ("[model]\nprior_std = -0.5\n", "invalid value for 'model.prior_std'")],
)
def test_bad_toml(text: str, pattern: str, tmp_path: Path,
                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.toml").write_text(text)
    out = tmp_path / "out"
    code, _, err = run(["train", "--config", tmp_path / "c.toml", "--out", out], capsys)
    assert_bad_input(code, err, out, pattern)


def test_negative_prior_std_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, _, err = run(["demo", "--out", out, "--set", "model.prior_std=-1"], capsys)
    assert_bad_input(code, err, out, "greater than 0")


def test_zero_samples(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, _, err = run(["evaluate", "--checkpoint", trained, "--out", out, "--samples", 0],
                       capsys)
    assert_bad_input(code, err, out, "--samples must be a positive number")
    code, _, err = run(["evaluate", "--checkpoint", trained, "--out", out, "--set",
                        "eval.n_samples=0"], capsys)
    assert_bad_input(code, err, out, "eval.n_samples")


def _edit_checkpoint(src: Path, dst: Path, edit) -> Path:
    with safetensors.safe_open(str(src), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        meta = dict(f.metadata())
    info = json.loads(meta["bayesim"])
    edit(info)
    meta["bayesim"] = json.dumps(info, sort_keys=True)
    dst.write_bytes(safetensors.torch.save(tensors, metadata=meta))
    return dst


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [(lambda m: m["model"].update(hidden=[33]), "has shape"),
     (lambda m: m["experiment"]["train"].update(epochs=99), "modified after saving")],
    ids=["wrong-shapes", "edited-metadata"],
)
def test_bad_checkpoints(trained: Path, tmp_path: Path, edit, pattern: str,
                         capsys: pytest.CaptureFixture[str]) -> None:
    bad = _edit_checkpoint(trained, tmp_path / "bad.safetensors", edit)
    out = tmp_path / "out"
    code, _, err = run(["evaluate", "--checkpoint", bad, "--out", out], capsys)
    assert_bad_input(code, err, out, pattern)


def test_usage_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["train", "--out", tmp_path / "o"], capsys)
    assert_bad_input(code, err, tmp_path / "o", "Missing option '--config'")
    code, _, err = run(["frobnicate"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_data_info(data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["data", "info"], capsys)
    assert code == 0 and "fashion-mnist" in out and "yes" in out


def test_console_script_exit_code_and_stderr(tmp_path: Path) -> None:
    """The installed entry point, in a real process: exit code 2, one line, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "bayesim.cli", "evaluate", "--checkpoint",
                           str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"bayesim: error: checkpoint {tmp_path / 'missing.safetensors'} not found"]
    assert not (tmp_path / "o").exists()


def test_data_fetch_command(http_mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    url, www = http_mirror
    serve_fake_release(www, monkeypatch)
    code, out, err = run(["data", "fetch", "mnist", "--dest", tmp_path / "m", "--base-url", url],
                         capsys)
    assert code == 0, err
    assert out.count("downloaded") == 4 and len(list((tmp_path / "m").glob("*.gz"))) == 4
    (www / "t10k-labels-idx1-ubyte.gz").write_bytes(b"corrupt")
    code, _, err = run(["data", "fetch", "mnist", "--dest", tmp_path / "n", "--base-url", url],
                       capsys)
    assert code == 2 and "does not match the official" in err and len(err.splitlines()) == 1


def test_simulate_with_device_constrained_training(trained: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim"
    code, stdout, err = run(["simulate", "--checkpoint", trained, "--out", out, "--samples", 4,
                             "--train-constrained", 1, "-q", "--set", "hardware.mapping=M1",
                             "--set", "hardware.decomposition_inputs=5"], capsys)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    hardware = report["hardware"]
    assert hardware["feasibility"]["nominal"]["fraction_feasible"] > 0.99
    assert len(hardware["config"]["alpha"]) == 2  # one scale per layer, from training
    assert {"variance_decomposition", "sampling", "counters"} <= set(hardware)
    assert (out / "model.safetensors").is_file() and (out / "sigma_realised.png").is_file()
    with np.load(out / "scores.npz") as scores:  # every weight's realised posterior
        assert scores["realised_std"].shape == (hardware["n_weights"],)
        assert set(np.unique(scores["realised_layer"])) == {0.0, 1.0}
    assert hardware["realised_posterior"]["layers"][0]["how"].startswith("exact")
    code, _, err = run(["simulate", "--checkpoint", trained, "--out", tmp_path / "bad", "-q",
                        "--train-constrained", -1], capsys)
    assert_bad_input(code, err, tmp_path / "bad", "--train-constrained")


SHARE_TINY = ["sharing.n_clusters=6", "sharing.min_cluster_size=2", "sharing.pretrain_epochs=1",
              "sharing.finetune_epochs=1", "sharing.epochs=1"]


def test_share_then_evaluate_and_simulate_the_shared_checkpoint(
        data_root: Path, tiny_overrides: list[str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    sets = [a for item in tiny_overrides + SHARE_TINY for a in ("--set", item)]
    out = tmp_path / "share"
    code, stdout, err = run(["share", "--out", out, "-q", *sets], capsys)
    assert code == 0, err
    for name in ("shared.safetensors", "report.json", "scores.npz", "codebook.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["predictor"]["kind"] == "shared"
    assert report["memory"]["trainable_parameters"] < report["memory"][
        "trainable_parameters_mean_field"]
    assert report["sharing"]["counts"]["final"]["gaussians"] >= 1
    code, _, err = run(["evaluate", "--checkpoint", out / "shared.safetensors", "--out",
                        tmp_path / "eval", "-q", "--samples", "3"], capsys)
    assert code == 0, err
    again = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert again["predictor"]["kind"] == "shared"
    memory = again["memory"]
    for priced in (report, again):  # one draw per codebook entry and outlier, the store read
        assert priced["cost"]["sources_sampled"] == memory["n_gaussians"] + memory["n_outliers"]
        assert priced["cost"]["weight_store"]["bits"] == 8 * memory["total_bytes"]
    assert again["cost"]["energy_per_inference_J"] == pytest.approx(
        3 * again["cost"]["energy_per_sample_J"])
    code, _, err = run(["evaluate", "--checkpoint", out / "shared.safetensors", "--out",
                        tmp_path / "badcard", "-q", "--set", "cost.periphery=nonexistent"],
                       capsys)
    assert_bad_input(code, err, tmp_path / "badcard", "nonexistent")
    code, _, err = run(["simulate", "--checkpoint", out / "shared.safetensors", "--out",
                        tmp_path / "chip", "-q", "--samples", "2", "--set",
                        "hardware.alpha_scope=chip", "--set", "hardware.decomposition_inputs=0"],
                       capsys)
    assert code == 0, err
    chip = json.loads((tmp_path / "chip" / "report.json").read_text())
    assert chip["cost"]["energy_per_inference_J"] > 0  # priced as the analog machine
    states = chip["hardware"]["device_states"]
    assert states["pairs"] >= chip["sharing"]["codebook"]["gaussians"]


@pytest.mark.parametrize("change,pattern", [
    (["sharing.n_clusters=40000"], "sharing.n_clusters"),
    (["sharing.n_clusters=5000"], "exceeds the model's"),
    (["sharing.tau_w=-0.1"], "sharing.tau_w"),
    (["sharing.gradient_top_percent=150"], "sharing.gradient_top_percent"),
])
def test_share_bad_input_exits_2(change: list[str], pattern: str, data_root: Path,
                                 tiny_overrides: list[str], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    sets = [a for item in tiny_overrides + ["model.hidden=[4]", *change] for a in ("--set", item)]
    out = tmp_path / "share"
    code, _, err = run(["share", "--out", out, "-q", *sets], capsys)
    assert_bad_input(code, err, out, pattern)


def test_tables_keep_their_width_when_stdout_is_not_a_terminal(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Under capsys stdout is not a terminal: rich would cut the table to 80 columns, so the
    card's parameter names would end in "…" and several would read alike."""
    code, out, _ = run(["devices", "show", "pcm_ibm_2020"], capsys)
    assert code == 0
    assert "…" not in out
    for name in ("range.calibrated_g", "accumulated.amplitude.law", "drift.nu_std.law"):
        assert name in out, name
    assert max(len(line) for line in out.splitlines()) > 80


@pytest.mark.parametrize("argv,pattern", [
    (["simulate", "--checkpoint", "{missing}", "--config", "experiments/machine_pcm.toml",
      "--out", "{file}"], "is a file; give a directory"),
    (["evaluate", "--checkpoint", "{missing}", "--out", "{file}/sub"], "nothing can be written"),
    (["sweep", "experiments/cost_pareto.toml", "--out", "{file}/sub"], "nothing can be written"),
    (["devices", "plot", "pcm_ibm_2020", "--out", "{file}/x.png"], "nothing can be written"),
    (["devices", "plot", "pcm_ibm_2020", "--out", "{dir}"], "is a directory"),
])
def test_an_out_path_blocked_by_a_file_is_refused_before_any_work(
        argv: list[str], pattern: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--out naming an existing file (or a path under one) stops the command at once, with one
    line and exit code 2, and leaves the file as it was."""
    blocker = tmp_path / "afile"
    blocker.write_text("keep me")
    (tmp_path / "adir.png").mkdir()
    names = {"missing": tmp_path / "missing.safetensors", "file": blocker,
             "dir": tmp_path / "adir.png"}
    code, _, err = run([a.format(**names) for a in argv], capsys)
    assert_bad_input(code, err, tmp_path / "nothing", pattern)
    assert blocker.read_text() == "keep me"


def test_a_checkpoint_directory_names_the_file_to_give(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--checkpoint DIR (a run directory) says it is a directory and which file to give, not
    "not found"."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.safetensors").write_bytes(b"")
    code, _, err = run(["evaluate", "--checkpoint", run_dir, "--out", tmp_path / "o"], capsys)
    expected = (f"is a directory (it holds model.safetensors); give the file, e.g. "
                f"{run_dir / 'model.safetensors'}")
    assert_bad_input(code, err, tmp_path / "o", expected)
