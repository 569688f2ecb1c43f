"""The verdict of a chip run (bayesim.verdict): its standard errors against simulation and an
independent AUROC (scikit-learn), its warnings on made-up reports, and `simulate` end to end."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bayesim import __version__
from bayesim.cli import main
from bayesim.verdict import (
    ACCURACY_DROP,
    REALISED_FAILS,
    accuracy_se,
    auroc_se,
    reference_section,
    verdict,
)


def report(accuracy: float, auroc_mi: float, n: int = 10_000, not_realised=(),
           n_ood: int | None = None) -> dict:
    """A made-up report with the keys a verdict reads (``n`` clean, ``n_ood`` OOD images)."""
    hardware = {"realised_posterior": {"not_realised": list(not_realised),
                                       "layers": [{}, {}]}}
    return {"predictor": {"kind": "analog", "label": "chip"}, "n_samples": 10, "seed": 0,
            "in_distribution": {"accuracy": accuracy, "nll": 0.3, "ece": 0.02, "n": n},
            "uncertainty": {"auroc_aleatoric": 0.9, "auroc_epistemic": auroc_mi,
                            "auroc_epistemic_pe": 0.9,
                            "subsets": {"clean": {"n": n}, "ood": {"n": n_ood or n // 2}}},
            "hardware": hardware}


def test_hanley_mcneil_standard_error_matches_simulated_aurocs() -> None:
    """Hanley & McNeil's formula is exact for exponentially distributed scores: 600 replicate
    data sets of 1,000 negatives and 50 positives (AUROC 2/3), their AUROCs by scikit-learn (an
    independent implementation). The spread agrees with the closed form within 10 % (the
    standard deviation of 600 draws has a relative standard error of 1/√1200 ≈ 2.9 %); with the
    two counts swapped the formula is 15 % off, so the test tells the argument order apart."""
    rng = np.random.default_rng(0)
    n_neg, n_pos = 1000, 50
    aucs = []
    labels = np.r_[np.zeros(n_neg), np.ones(n_pos)]
    for _ in range(600):
        neg, pos = rng.exponential(1.0, n_neg), rng.exponential(2.0, n_pos)
        aucs.append(roc_auc_score(labels, np.r_[neg, pos]))
    spread = float(np.std(aucs, ddof=1))
    mean = float(np.mean(aucs))
    assert abs(mean - 2 / 3) < 0.005
    assert abs(auroc_se(mean, n_neg, n_pos) / spread - 1) < 0.10
    assert abs(auroc_se(mean, n_pos, n_neg) / spread - 1) > 0.12


def test_the_verdict_takes_clean_as_negatives_and_ood_as_positives() -> None:
    reference = reference_section(report(0.95, 0.90, n=5000, n_ood=40), cached=False)
    judged = verdict(report(0.95, 0.85, n=5000, n_ood=40), reference)
    expected = math.hypot(auroc_se(0.85, 5000, 40), auroc_se(0.90, 5000, 40))
    assert judged["standard_errors"]["auroc_epistemic"] == pytest.approx(expected)
    assert expected != pytest.approx(math.hypot(auroc_se(0.85, 40, 5000),
                                                auroc_se(0.90, 40, 5000)))


def test_binomial_standard_error() -> None:
    rng = np.random.default_rng(1)
    draws = rng.binomial(500, 0.9, size=4000) / 500
    assert abs(accuracy_se(0.9, 500) / np.std(draws) - 1) < 0.05
    assert accuracy_se(0.9, 0) == math.inf


def test_equal_runs_are_ok_and_differences_are_zero() -> None:
    chip = report(0.95, 0.9)
    judged = verdict(chip, reference_section(report(0.95, 0.9), cached=False))
    assert judged["status"] == "ok" and judged["warnings"] == []
    assert all(v == 0 for v in judged["differences"].values())


def test_a_large_drop_on_a_large_test_set_warns() -> None:
    reference = reference_section(report(0.95, 0.90), cached=False)
    judged = verdict(report(0.80, 0.60), reference)
    assert judged["status"] == "warning"
    assert judged["differences"]["accuracy"] == pytest.approx(-0.15)
    assert any(w.startswith("accuracy 0.800 is 0.150 below") for w in judged["warnings"])
    assert any(w.startswith("AUROC MI (clean vs OOD) 0.600") for w in judged["warnings"])


def test_a_drop_within_test_set_noise_does_not_warn() -> None:
    """30 images: a 10 pp drop is less than 3 standard errors (≈ 0.24)."""
    reference = reference_section(report(0.90, 0.90, n=30), cached=False)
    judged = verdict(report(0.80, 0.80, n=30), reference)
    assert judged["status"] == "ok", judged["warnings"]


def test_a_drop_below_the_margin_does_not_warn_however_precise() -> None:
    reference = reference_section(report(0.95, 0.90, n=10**7), cached=False)
    judged = verdict(report(0.95 - ACCURACY_DROP / 2, 0.88, n=10**7), reference)
    assert judged["status"] == "ok"


def test_a_layer_not_realised_warns_even_when_the_metrics_agree() -> None:
    chip = report(0.95, 0.9, not_realised=["layer 1 (fc: BayesLinear 10×32): median W₂ 1.1 σ"])
    judged = verdict(chip, reference_section(report(0.95, 0.9), cached=False))
    assert judged["status"] == "warning"
    assert judged["warnings"] == [f"{REALISED_FAILS}: layer 1 (fc: BayesLinear 10×32): median "
                                  f"W₂ 1.1 σ"]
    assert judged["summary"] == "the realised posterior fails in 1 of 2 layers"


def test_simulate_prints_the_software_reference_and_warns_when_the_chip_fails(
        tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str],
        reference_cache: Path) -> None:
    """IBM's PCM card programmed once (M1) cannot reach the σ of a freshly trained MLP: the
    report stores the software reference and a warning verdict, stdout shows both rows and the
    difference, stderr the warning; a second run reuses the cached reference."""
    tiny = ["model.arch='mlp'", "model.hidden=[32]", "train.epochs=2", "train.batch_size=64",
            "data.ambiguous_test_images=20"]
    sets = [a for item in tiny for a in ("--set", item)]
    assert main(["train", "--config", "experiments/dirty_mnist_lenet.toml", "--out",
                 str(tmp_path / "run"), "-q", *sets]) == 0
    capsys.readouterr()
    checkpoint = tmp_path / "run" / "model.safetensors"
    args = ["simulate", "--checkpoint", str(checkpoint), "--config",
            "experiments/machine_pcm_m1.toml", "--samples", "4", "-q", "--set",
            "hardware.decomposition_inputs=0"]
    assert main([*args, "--out", str(tmp_path / "sim")]) == 0
    out, err = capsys.readouterr()
    chip = json.loads((tmp_path / "sim" / "report.json").read_text())
    assert chip["reference"]["predictor"]["kind"] == "fp32"
    assert chip["reference"]["n_samples"] == chip["n_samples"] == 4
    assert chip["reference"]["from_cache"] is False
    assert chip["verdict"]["status"] == "warning"
    assert chip["verdict"]["differences"]["accuracy"] == pytest.approx(
        chip["in_distribution"]["accuracy"] - chip["reference"]["accuracy"])
    assert "software (fp32)" in out and "Δ chip − software" in out
    assert "verdict: analog M1 pcm_ibm_2020: warning: the realised posterior fails" in out
    assert "does not realise layer 0" in err  # warned once by the machine, not again
    assert err.count("does not realise layer 0") == 1
    assert len(list((reference_cache / "references").glob("*.json"))) == 1
    assert chip["verdict"]["status"] == ("warning" if chip["verdict"]["warnings"] else "ok")
    assert chip["provenance"]["version"] == __version__
    assert main([*args, "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    assert again["reference"]["from_cache"] is True
    assert {k: v for k, v in again["reference"].items() if k != "from_cache"} == \
        {k: v for k, v in chip["reference"].items() if k != "from_cache"}
    # the reference is what `bayesim evaluate` gives at the same S and seed
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "sw"),
                 "--samples", "4", "-q"]) == 0
    software = json.loads((tmp_path / "sw" / "report.json").read_text())
    for key in ("accuracy", "nll", "ece"):
        assert chip["reference"][key] == pytest.approx(software["in_distribution"][key],
                                                       rel=1e-5)
    for key in ("auroc_aleatoric", "auroc_epistemic"):
        assert chip["reference"][key] == pytest.approx(software["uncertainty"][key], rel=1e-5)
    # another S is another reference
    args[args.index("--samples") + 1] = "3"
    assert main([*args, "--out", str(tmp_path / "s3")]) == 0
    other = json.loads((tmp_path / "s3" / "report.json").read_text())
    assert other["reference"]["from_cache"] is False and other["reference"]["n_samples"] == 3
    capsys.readouterr()


def test_a_foreign_wide_posterior_gets_its_own_software_reference(
        tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bayesian-torch posterior bayesim did not train (ρ = 0.5, so σ ≈ 0.97 > |μ|; biases
    of ±3), imported and simulated on the PCM chip: its reference is the imported checkpoint in
    software (what `bayesim evaluate` gives at the same S), and its verdict says why it is what
    it is."""
    torch = pytest.importorskip("torch")
    layers = pytest.importorskip("bayesian_torch.layers")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = layers.LinearReparameterization(784, 16, posterior_rho_init=0.5)
            self.b = layers.LinearReparameterization(16, 10, posterior_rho_init=0.5)

        def forward(self, x):
            h, _ = self.a(x.flatten(1))
            return self.b(torch.relu(h))[0]

    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():
        net.a.mu_bias.uniform_(-3, 3)
        net.b.mu_bias.uniform_(-3, 3)
    torch.save(net.state_dict(), tmp_path / "bt.pt")
    checkpoint = tmp_path / "bt.safetensors"
    assert main(["import", str(tmp_path / "bt.pt"), "--from", "bayesian-torch", "--arch", "mlp",
                 "--set", "model.hidden=[16]", "--out", str(checkpoint)]) == 0
    assert main(["simulate", "--checkpoint", str(checkpoint), "--config",
                 "experiments/machine_pcm.toml", "--samples", "4", "-q", "--set",
                 "hardware.decomposition_inputs=0", "--out", str(tmp_path / "chip")]) == 0
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--samples", "4", "-q", "--out",
                 str(tmp_path / "sw")]) == 0
    capsys.readouterr()
    chip = json.loads((tmp_path / "chip" / "report.json").read_text())
    software = json.loads((tmp_path / "sw" / "report.json").read_text())
    assert chip["reference"]["predictor"]["kind"] == "fp32"
    assert chip["reference"]["accuracy"] == pytest.approx(
        software["in_distribution"]["accuracy"], rel=1e-5)
    assert chip["reference"]["auroc_epistemic"] == pytest.approx(
        software["uncertainty"]["auroc_epistemic"], rel=1e-5)
    judged = chip["verdict"]
    assert judged["status"] == ("warning" if judged["warnings"] else "ok")
    assert len(judged["warnings"]) >= len(chip["hardware"]["realised_posterior"]["not_realised"])
