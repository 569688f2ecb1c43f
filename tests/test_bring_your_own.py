"""Bring your own BNN: models bayesim did not define compile onto the chip, posteriors trained in
Pyro and bayesian-torch import into checkpoints, and the predictive of each equals the source
library's own Monte-Carlo predictive within Monte-Carlo error (pyro-ppl and bayesian-torch are
dev extras: the Makefile installs them; bayesim itself never imports them)."""

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import safetensors.torch
import torch
from bayesian_torch.layers import (
    Conv1dReparameterization,
    Conv2dFlipout,
    Conv2dReparameterization,
    LinearFlipout,
    LinearReparameterization,
)
from pyro.distributions import constraints
from pyro.infer import SVI, Predictive, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule, PyroSample
from torch import nn

from bayesim.bnn.checkpoint import load_checkpoint
from bayesim.bnn.layers import BayesConv2d, BayesLinear, attach_generator
from bayesim.cli import main
from bayesim.errors import CheckpointError, MappingError
from bayesim.evaluate import SoftwarePredictor
from bayesim.machine import BayesianMachine, HardwareConfig

EXACT = HardwareConfig(mapping="M0", m0_sampling="per_sample", periphery="ideal")
"""The chip with exact weights, one weight draw per sample shared by all inputs and positions
(what software sampling does), and an ideal periphery."""


def run(args: list, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_bad_input(code: int, err: str, pattern: str, *absent: Path) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("bayesim: error: ") and pattern in lines[0], lines[0]
    for path in absent:
        assert not path.exists(), path


def within_mc_error(a: torch.Tensor, b: torch.Tensor, z: float = 4.0) -> float:
    """Fraction of outputs whose mean probabilities of the two ``[S, B, C]`` sample sets agree
    within ``z`` standard errors of their difference. Also asserts that the mean squared z-score
    is below 2 (it is 1 in expectation when both estimate the same mean; a shift of 1.5 SE on
    every output gives 3.25), so that a small shift of all outputs cannot hide under the
    per-output bound."""
    se = torch.sqrt(a.var(0) / a.shape[0] + b.var(0) / b.shape[0]).clamp_min(1e-7)
    scores = (a.mean(0) - b.mean(0)) / se
    assert float((scores ** 2).mean()) < 2.0, float((scores ** 2).mean())
    return float((scores.abs() <= z).float().mean())


# ---- Pyro ----

class PyroMLP(PyroModule):
    """784 → 8 → 10 with N(0, 1) priors on every weight and bias, named as bayesim's MLP is not
    (``fc1``, ``out``)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = PyroModule[nn.Linear](784, 8)
        self.fc1.weight = PyroSample(dist.Normal(0.0, 1.0).expand([8, 784]).to_event(2))
        self.fc1.bias = PyroSample(dist.Normal(0.0, 1.0).expand([8]).to_event(1))
        self.out = PyroModule[nn.Linear](8, 10)
        self.out.weight = PyroSample(dist.Normal(0.0, 1.0).expand([10, 8]).to_event(2))
        self.out.bias = PyroSample(dist.Normal(0.0, 1.0).expand([10]).to_event(1))

    def forward(self, x, y=None):
        logits = self.out(torch.relu(self.fc1(x.reshape(x.shape[0], -1))))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("obs", dist.Categorical(logits=logits), obs=y)
        return logits


class RenamedGuide(AutoNormal):
    """An AutoNormal under another name whose scales are exp-positive, not softplus."""

    scale_constraint = constraints.positive


def train_pyro(guide_class: type, path: Path, steps: int = 300) -> tuple:
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    x = torch.rand(64, 1, 28, 28)
    y = torch.randint(0, 10, (64,))
    model = PyroMLP()
    guide = guide_class(model)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.01}), Trace_ELBO())
    for _ in range(steps):
        svi.step(x, y)
    pyro.get_param_store().save(str(path))
    return model, guide


@pytest.mark.parametrize("guide_class", [AutoNormal, RenamedGuide])
def test_a_pyro_posterior_imports_and_predicts_as_pyro(guide_class, tmp_path: Path,
                                                       capsys) -> None:
    """Pyro's Predictive and bayesim's software predictive of the imported checkpoint agree
    within 4 standard errors for ≥ 99 % of outputs (S = 2,000 each); the scale follows the
    stored constraint (softplus for AutoNormal, exp for the renamed guide)."""
    store, out = tmp_path / "params.pt", tmp_path / "ck.safetensors"
    model, guide = train_pyro(guide_class, store)
    code, _, err = run(["import", store, "--from", "pyro", "--arch", "mlp", "--set",
                        "model.hidden=[8]", "--out", out], capsys)
    assert code == 0, err
    loaded = load_checkpoint(out)
    assert loaded.metadata["imported"]["guide"] == guide_class.__name__
    assert loaded.metadata["imported"]["mapping"] == {"fc1": "1", "out": "3"}
    kind = "softplus" if guide_class is AutoNormal else "greater_than"
    assert kind in loaded.metadata["imported"]["parameterisation"]["fc1.weight"]
    scales = guide.scales.fc1.weight.detach()  # constrained by Pyro itself
    assert torch.allclose(loaded.model[1].weight_sigma, scales, rtol=1e-5, atol=1e-7)
    x = torch.rand(20, 1, 28, 28)
    S = 2000
    with torch.no_grad():
        logits = Predictive(model, guide=guide, num_samples=S,
                            return_sites=["_RETURN"])(x)["_RETURN"]
    ours = SoftwarePredictor(loaded.model).sample_probs(x, S, seed=1)
    assert within_mc_error(torch.softmax(logits, -1), ours) >= 0.99


def test_a_pickle_outside_the_allowlist_is_refused_unexecuted(tmp_path: Path, capsys) -> None:
    flag = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {flag}",))

    store, out = tmp_path / "params.pt", tmp_path / "ck.safetensors"
    torch.save({"params": {"AutoNormal.locs.fc.weight": torch.zeros(2)},
                "constraints": {"AutoNormal.locs.fc.weight": Payload()}}, store)
    code, _, err = run(["import", store, "--from", "pyro", "--arch", "mlp", "--out", out],
                       capsys)
    assert_bad_input(code, err, "outside the allowlist", out, flag)
    assert "system" in err


def test_pyro_store_errors(tmp_path: Path) -> None:
    from bayesim.importers import read_posterior

    store = tmp_path / "params.pt"
    torch.save({"params": {"w": torch.zeros(2)}, "constraints": {"w": constraints.real}}, store)
    with pytest.raises(CheckpointError, match="AutoNormal family"):
        read_posterior("pyro", store)
    with open(store, "wb") as f:
        pickle.dump([1, 2], f)
    with pytest.raises(CheckpointError, match="is not a readable Pyro param store"):
        read_posterior("pyro", store)
    torch.save({"params": {"G.locs.fc.weight": torch.zeros(2), "G.scales.fc.weight":
                           torch.zeros(2)},
                "constraints": {"G.locs.fc.weight": constraints.real,
                                "G.scales.fc.weight": constraints.interval(0.0, 1.0)}}, store)
    good = read_posterior("pyro", store)  # interval: lower + width · sigmoid(0) = 0.5
    assert torch.allclose(good.layers[0].weight[1], torch.full((2,), 0.5))
    broken = constraints.interval(0.0, 1.0)
    del broken.__dict__["upper_bound"]
    torch.save({"params": {"G.locs.fc.weight": torch.zeros(2), "G.scales.fc.weight":
                           torch.zeros(2)},
                "constraints": {"G.locs.fc.weight": constraints.real,
                                "G.scales.fc.weight": broken}}, store)
    with pytest.raises(CheckpointError, match="constraint of G.scales.fc.weight .* malformed"):
        read_posterior("pyro", store)


# ---- bayesian-torch ----

class BTNet(nn.Module):
    """A user-written network of bayesian-torch layers, with its own forward."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = Conv2dReparameterization(1, 4, 3, stride=2, padding=1,
                                             posterior_rho_init=-2.0)
        self.flip = Conv2dFlipout(4, 4, 3, padding=1, posterior_rho_init=-2.0)
        self.fc = LinearFlipout(4 * 14 * 14, 16, posterior_rho_init=-2.0)
        self.head = LinearReparameterization(16, 10, posterior_rho_init=-2.0)

    def forward(self, x):
        h, kl = self.conv(x)
        h2, kl2 = self.flip(torch.relu(h))
        h = torch.relu(h + h2)  # a residual add
        h, kl3 = self.fc(h.flatten(1))
        out, kl4 = self.head(torch.relu(h))
        return out, kl + kl2 + kl3 + kl4


def test_bayesian_torch_layers_compile_and_predict_as_bayesian_torch() -> None:
    """A bayesian-torch model compiles as it is; on the exact chip its predictive equals
    bayesian-torch's own Monte-Carlo forward within Monte-Carlo error (S = 1,500)."""
    torch.manual_seed(0)
    net = BTNet().eval()
    x = torch.rand(12, 1, 28, 28)
    S = 1500
    with torch.no_grad():
        theirs = torch.stack([torch.softmax(net(x)[0], -1) for _ in range(S)])
    machine = BayesianMachine.compile(net, EXACT)
    assert [layer.path for layer in machine.layers] == ["conv", "flip", "fc", "head"]
    ours = machine.sample_probs(x, S, seed=3)
    assert within_mc_error(theirs, ours) >= 0.99
    # the chip draws σ = log1p(exp ρ) of the bayesian-torch layer
    draws = machine.weight_draws(3, 4000, seed=0)
    sigma = torch.log1p(torch.exp(net.head.rho_weight)).detach().numpy()
    assert np.median(np.abs(draws.std(0) / sigma - 1)) < 0.03


def test_a_bayesian_torch_state_dict_imports(tmp_path: Path, capsys) -> None:
    torch.manual_seed(1)

    class BTMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = LinearReparameterization(784, 16, posterior_rho_init=-2.5)
            self.b = LinearReparameterization(16, 10, posterior_rho_init=-2.5)

        def forward(self, x):
            h, _ = self.a(x.flatten(1))
            return self.b(torch.relu(h))[0]

    net = BTMLP().eval()
    state, out = tmp_path / "bt.pt", tmp_path / "ck.safetensors"
    torch.save(net.state_dict(), state)
    code, _, err = run(["import", state, "--from", "bayesian-torch", "--arch", "mlp",
                        "--set", "model.hidden=[16]", "--out", out], capsys)
    assert code == 0, err
    loaded = load_checkpoint(out)
    x = torch.rand(10, 1, 28, 28)
    S = 1500
    with torch.no_grad():
        theirs = torch.stack([torch.softmax(net(x), -1) for _ in range(S)])
    ours = SoftwarePredictor(loaded.model).sample_probs(x, S, seed=2)
    assert within_mc_error(theirs, ours) >= 0.99


# ---- a user-written residual BNN with BatchNorm ----

class Residual(nn.Module):
    """bayesim layers in a user's own residual forward, with BatchNorm and pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = BayesConv2d(1, 6, 3, padding=1, rho_init=-3.0)
        self.bn = nn.BatchNorm2d(6)
        self.conv = BayesConv2d(6, 6, 3, padding=1, bias=False, rho_init=-3.0)
        self.bn2 = nn.BatchNorm2d(6)
        self.fc = BayesLinear(6, 10, rho_init=-3.0)

    def forward(self, x):
        h = torch.relu(self.bn(self.stem(x)))
        h = torch.relu(h + self.bn2(self.conv(h)))
        return self.fc(torch.nn.functional.adaptive_avg_pool2d(h, 1).flatten(1))


def test_a_residual_bnn_on_the_exact_chip_equals_software_sampling() -> None:
    torch.manual_seed(0)
    net = Residual()
    net.train()
    with torch.no_grad():  # BatchNorm statistics of its own
        for _ in range(3):
            net(torch.rand(32, 1, 28, 28))
    net.eval()
    attach_generator(net, 0)
    x = torch.rand(30, 1, 28, 28)
    S = 1500
    software = SoftwarePredictor(net).sample_probs(x, S, seed=1)
    machine = BayesianMachine.compile(net, EXACT)
    chip = machine.sample_probs(x, S, seed=2)
    assert within_mc_error(software, chip) >= 0.99
    assert "bn (BatchNorm2d)" in machine.digital_parameters()


# ---- plain layers with σ, and what cannot be mapped ----

def test_plain_layers_with_sigma_and_unmappable_modules() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 8), nn.ReLU(), nn.Linear(8, 10))
    sigmas = {"1.weight": torch.full((8, 784), 0.05), "3.weight": torch.full((10, 8), 0.2),
              "3.bias": torch.full((10,), 0.1)}
    machine = BayesianMachine.compile(net, EXACT, sigmas=sigmas)
    assert np.all(machine.layers[1].bias_sigma == pytest.approx(0.1))
    assert np.all(machine.layers[0].bias_sigma == 0.0)  # a bias without σ: a point mass
    draws = machine.weight_draws(1, 3000, seed=0)
    assert draws.std(0).mean() == pytest.approx(0.2, rel=0.03)
    assert draws.mean(0) == pytest.approx(net[3].weight.detach().numpy(), abs=0.02)
    with pytest.raises(MappingError, match=r"^1 \(Linear\) has no posterior"):
        BayesianMachine.compile(net, EXACT)
    only_last = BayesianMachine.compile(net, EXACT, sigmas={"3.weight": sigmas["3.weight"]},
                                        digital=["1"])
    assert [layer.path for layer in only_last.layers] == ["3"]
    with pytest.raises(MappingError, match=r"σ of 1.weight has shape"):
        BayesianMachine.compile(net, EXACT, sigmas={"1.weight": torch.ones(3)})
    zero = {"1.weight": torch.zeros(8, 784), "3.weight": torch.zeros(10, 8)}
    with warnings.catch_warnings():  # σ ≡ 0: point masses the chip reports, not a crash
        warnings.simplefilter("ignore")
        point = BayesianMachine.compile(net, HardwareConfig(mapping="M1"), sigmas=zero)
    assert point.realised()["layers"][0]["kind"] == "Linear"
    conv1d = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 782, 10))
    with pytest.raises(MappingError, match=r"^0 \(Conv1d\): the machine maps 2D"):
        BayesianMachine.compile(conv1d, EXACT, sigmas={"2.weight": torch.ones(10, 1564)})
    BayesianMachine.compile(conv1d, EXACT, sigmas={"2.weight": torch.ones(10, 1564)},
                            digital=["0"])
    odd = nn.Sequential(Conv1dReparameterization(1, 2, 3), nn.Flatten())
    with pytest.raises(MappingError, match=r"^0 \(Conv1dReparameterization\): the machine "
                                           r"cannot map"):
        BayesianMachine.compile(odd, EXACT)


# ---- importer input errors ----

def write_tensors(path: Path, hidden: int = 8, **edit) -> None:
    g = torch.Generator().manual_seed(0)
    t = {"fc1.weight.mu": torch.randn(hidden, 784, generator=g) * 0.05,
         "fc1.weight.sigma": torch.full((hidden, 784), 0.02),
         "fc1.bias.mu": torch.zeros(hidden), "fc1.bias.rho": torch.full((hidden,), -4.0),
         "out.weight.mu": torch.randn(10, hidden, generator=g) * 0.3,
         "out.weight.sigma": torch.full((10, hidden), 0.1),
         "out.bias.mu": torch.zeros(10), "out.bias.sigma": torch.full((10,), 0.5)}
    for key, value in edit.items():
        key = key.replace("__", ".")
        if value is None:
            del t[key]
        else:
            t[key] = value
    safetensors.torch.save_file(t, str(path))


@pytest.mark.parametrize("edit, args, pattern", [
    ({}, ["--set", "model.hidden=[16]"], "fc1 weight has shape (8, 784)"),
    ({"out__weight__sigma": None}, [], "needs both .mu and .sigma"),
    ({"out__weight__sigma": torch.full((10, 8), -0.1)}, [], "σ must be finite and > 0"),
    ({"fc1__weight__mu": torch.full((8, 784), float("nan"))}, [], "NaN or Inf"),
    ({}, ["--arch", "lenet5"], "the lenet5 architecture 5"),
    ({}, ["--map", "nope=1"], "--map names 'nope'"),
    ({}, ["--set", "train.epochs=3"], "only model.* overrides"),
    ({}, ["--map", "fc1=3", "--map", "out=3"], "several source modules on '3'"),
    ({}, ["--map", "out=#7"], "Bayesian layers #0–#1"),
])
def test_bad_imports_exit_2_and_write_nothing(edit, args, pattern, tmp_path: Path,
                                              capsys) -> None:
    source, out = tmp_path / "post.safetensors", tmp_path / "ck.safetensors"
    write_tensors(source, **edit)
    arch = ["--arch", "mlp"] if "--arch" not in args else []
    code, _, err = run(["import", source, "--from", "tensors", *arch, "--set",
                        "model.hidden=[8]", *args, "--out", out], capsys)
    assert_bad_input(code, err, pattern, out)


def test_tensors_import_round_trips_sigma(tmp_path: Path, capsys) -> None:
    source, out = tmp_path / "post.safetensors", tmp_path / "ck.safetensors"
    write_tensors(source)
    code, _, err = run(["import", source, "--from", "tensors", "--arch", "mlp", "--set",
                        "model.hidden=[8]", "--map", "out=3", "--out", out], capsys)
    assert code == 0, err
    model = load_checkpoint(out).model
    assert torch.allclose(model[3].weight_sigma, torch.full((10, 8), 0.1), rtol=1e-6)
    assert torch.allclose(model[1].bias_sigma, torch.nn.functional.softplus(
        torch.tensor(-4.0)).expand(8), rtol=1e-5)
    meta = load_checkpoint(out).metadata["imported"]
    assert meta["format"] == "tensors" and len(meta["sha256"]) == 64


# ---- your own data ----

def imported_mlp(tmp_path: Path, capsys) -> Path:
    """A checkpoint of bayesim's 784-8-10 MLP imported from μ/σ tensors."""
    source, ck = tmp_path / "post.safetensors", tmp_path / "ck.safetensors"
    write_tensors(source)
    assert run(["import", source, "--from", "tensors", "--arch", "mlp", "--set",
                "model.hidden=[8]", "--out", ck], capsys)[0] == 0
    return ck


def test_own_data_evaluates_and_bad_files_exit_2(tmp_path: Path, capsys) -> None:
    ck = imported_mlp(tmp_path, capsys)
    rng = np.random.default_rng(0)
    good = {"x_test": rng.random((40, 28, 28), dtype=np.float32),
            "y_test": rng.integers(0, 10, 40), "x_ood": rng.random((30, 28, 28)).astype(
                np.float32)}
    data = tmp_path / "mine.npz"
    np.savez(data, **good)
    out = tmp_path / "eval"
    code, _, err = run(["evaluate", "--checkpoint", ck, "--out", out, "--data", data,
                        "--samples", "4", "-q"], capsys)
    assert code == 0, err
    import json
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["file"] == str(data) and report["data"]["sha256"]
    assert report["in_distribution"]["n"] == 40 and report["uncertainty"]["auroc_epistemic"]
    np.savez(data, x_test=good["x_test"], y_test=good["y_test"])
    code, _, err = run(["evaluate", "--checkpoint", ck, "--out", tmp_path / "no_ood",
                        "--data", data, "--samples", "4", "-q"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "no_ood" / "report.json").read_text())
    assert report["uncertainty"]["auroc_epistemic"] is None
    for bad, pattern in [
        ({**good, "x_ood": good["x_ood"][:, :20]}, "x_ood has examples of shape"),
        ({**good, "y_test": good["y_test"] + 5}, "outside [0, 9]"),
        ({**good, "y_test": good["y_test"].astype(np.float32)}, "labels must be integers"),
        ({**good, "x_test": good["x_test"].astype(np.int32)}, "must be float or uint8"),
        ({**good, "y_test": good["y_test"][:10]}, "one label per input"),
        ({"y_test": good["y_test"]}, "has no x_test"),
        ({**good, "x_test": good["x_test"][:, :20, :20], "x_ood": good["x_ood"][:, :20, :20]},
         "the model cannot take inputs of shape (1, 20, 20)"),
    ]:
        np.savez(data, **bad)
        out = tmp_path / "bad"
        code, _, err = run(["evaluate", "--checkpoint", ck, "--out", out, "--data", data,
                            "--samples", "4", "-q"], capsys)
        assert_bad_input(code, err, pattern, out)


def test_the_residual_architecture_trains_and_simulates(data_root: Path, tmp_path: Path,
                                                        capsys) -> None:
    """`bayesim train` trains the registered ResNet (BatchNorm included) and `simulate` runs it
    on a PCM chip."""
    tiny = ["model.arch='resnet'", "model.channels=[4,8]", "train.epochs=1",
            "train.batch_size=64", "eval.n_samples=3", "data.ambiguous_test_images=20",
            "hardware.decomposition_inputs=0"]
    sets = [a for item in tiny for a in ("--set", item)]
    code, _, err = run(["train", "--config", "experiments/machine_pcm.toml", "--out",
                        tmp_path / "run", "-q", *sets], capsys)
    assert code == 0, err
    ck = tmp_path / "run" / "model.safetensors"
    assert load_checkpoint(ck).model_config.arch == "resnet"
    code, _, err = run(["simulate", "--checkpoint", ck, "--config",
                        "experiments/machine_pcm.toml", "--out", tmp_path / "sim", "-q",
                        "--set", "eval.n_samples=3", "--set", "hardware.decomposition_inputs=0"],
                       capsys)
    assert code == 0, err
    import json
    report = json.loads((tmp_path / "sim" / "report.json").read_text())
    paths = [layer["path"] for layer in report["hardware"]["realised_posterior"]["layers"]]
    assert paths[0] == "stem" and paths[-1] == "fc" and "blocks.1.shortcut.0" in paths


# ---- the read loop on user-written forwards ----

class Twice(nn.Module):
    """A user forward that calls one Bayesian layer twice (weight tying) and adds a residual."""

    def __init__(self, jitter: bool = False) -> None:
        super().__init__()
        self.jitter = jitter
        """Add noise of the user's own before the first layer: its input then changes from
        sample to sample, and the memo must not reuse it."""
        self.inp = BayesLinear(784, 16, rho_init=-3.0)
        self.tied = BayesLinear(16, 16, rho_init=-3.0)
        self.out = BayesLinear(16, 10, rho_init=-3.0)

    def forward(self, x):
        if self.jitter:
            x = x + 1e-2 * torch.randn_like(x)
        h = torch.relu(self.inp(x.flatten(1)))
        h = h + torch.relu(self.tied(h))
        h = h + torch.relu(self.tied(h))
        return self.out(h)


@pytest.mark.parametrize("jitter,mapping", [(False, "M1"), (True, "M1"), (False, "M3"),
                                            (True, "M3")])
def test_memoisation_on_a_user_forward_is_bit_identical(jitter: bool, mapping: str,
                                                        monkeypatch) -> None:
    """M1 and M3 memoise the first read layer of every batch (M3: its moments per copy); with
    the memo switched off the probabilities are the same bits (a residual, a layer called twice,
    two batches, S not a multiple of the copies), also when the user's forward changes the first
    layer's input from sample to sample."""
    torch.manual_seed(0)
    net, x = Twice(jitter), torch.rand(30, 1, 28, 28)
    hw = HardwareConfig(mapping=mapping, batch_size=16, copies=3)
    machine = BayesianMachine(net, hw, warn=False)
    assert machine.chip.scheme.memoises_first_layer(hw)
    torch.manual_seed(1)
    memoised = machine.sample_probs(x, 5, seed=4)
    from bayesim.machine import schemes

    monkeypatch.setattr(schemes.Scheme, "memoises_first_layer", lambda self, hw: False)
    for cls in vars(schemes).values():
        if isinstance(cls, type) and "memoises_first_layer" in vars(cls):
            monkeypatch.setattr(cls, "memoises_first_layer", lambda self, hw: False)
    machine = BayesianMachine(net, hw, warn=False)
    assert not machine.chip.scheme.memoises_first_layer(hw)
    torch.manual_seed(1)
    plain = machine.sample_probs(x, 5, seed=4)
    assert torch.equal(memoised, plain)


def test_a_layer_called_twice_reads_fresh_noise_each_time() -> None:
    """Both calls of the tied layer are reads of the same state with independent read noise:
    on the exact per-read chip their outputs for the same input differ, with the variance of one
    read each."""
    torch.manual_seed(0)
    layer = BayesLinear(16, 4, rho_init=-2.0)

    class Same(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            return torch.cat([self.layer(x), self.layer(x)], 1)[:, :8].reshape(-1, 8)

    machine = BayesianMachine.compile(Same(), HardwareConfig(mapping="M0"))
    x = torch.ones(1, 16)
    logits = []
    for s in range(400):  # logits through the chip's own loop: read outputs before softmax
        run = machine._loop
        from bayesim.machine.read import _Pass, read_seed_of

        seed = read_seed_of(1)
        logits.append(run._forward(x, _Pass(s, seed, 0, run.matrices(s, seed), None, None)))
    y = torch.cat(logits)
    first, second = y[:, :4], y[:, 4:]
    assert not torch.equal(first, second)
    corr = np.corrcoef(first[:, 0].numpy(), second[:, 0].numpy())[0, 1]
    assert abs(corr) < 4 / np.sqrt(400)  # independent reads (the bias is shared: σ_b small)
    expected = float(layer.weight_sigma[0].detach().square().sum()
                     + layer.bias_sigma[0].detach() ** 2)
    assert float(first[:, 0].var()) == pytest.approx(expected, rel=0.25)


def test_general_convolutions_lower_like_torch() -> None:
    """A non-square, strided, padded, dilated nn.Conv2d (F.unfold path) reads on the exact chip
    with σ → 0 as F.conv2d computes it."""
    conv = nn.Conv2d(2, 3, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(2, 1))
    net = nn.Sequential(conv, nn.Flatten())
    x = torch.rand(2, 2, 9, 11)
    sigmas = {"0.weight": torch.full_like(conv.weight, 1e-12)}
    machine = BayesianMachine.compile(net, EXACT, sigmas=sigmas)
    from bayesim.machine.read import _Pass, read_seed_of

    seed = read_seed_of(0)
    run = machine._loop
    got = run._forward(x, _Pass(0, seed, 0, run.matrices(0, seed), None, None))
    assert torch.allclose(got, net(x).detach(), atol=1e-5)


def test_own_data_must_fit_the_model_and_train_needs_x_train(tmp_path: Path, capsys) -> None:
    ck = imported_mlp(tmp_path, capsys)
    rng = np.random.default_rng(0)
    data = tmp_path / "mine.npz"
    np.savez(data, x_test=rng.random((20, 784), dtype=np.float32),
             y_test=rng.integers(0, 10, 20))
    out = tmp_path / "eval"
    code, _, err = run(["evaluate", "--checkpoint", ck, "--out", out, "--data", data,
                        "--set", "data.n_classes=12", "--samples", "2", "-q"], capsys)
    assert_bad_input(code, err, "the model has 10 classes", out)
    code, _, err = run(["train", "--config", "experiments/dirty_mnist_lenet.toml", "--out", out,
                        "--set", f"data.file='{data}'", "--set", "model.arch='mlp'", "-q"],
                       capsys)
    assert_bad_input(code, err, "has no x_train/y_train", out)


def test_own_data_from_an_idx_directory(tmp_path: Path, capsys) -> None:
    from bayesim.data.idx import write_idx

    ck = imported_mlp(tmp_path, capsys)
    rng = np.random.default_rng(1)
    idx = tmp_path / "idx"
    idx.mkdir()
    write_idx(idx / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (25, 28, 28),
                                                              dtype=np.uint8))
    write_idx(idx / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, 25, dtype=np.uint8))
    out = tmp_path / "eval"
    code, _, err = run(["evaluate", "--checkpoint", ck, "--out", out, "--data", idx,
                        "--samples", "3", "-q"], capsys)
    assert code == 0, err
    import json
    report = json.loads((out / "report.json").read_text())
    from bayesim.data.sources import tree_digest

    # a directory's digest covers its files (it keys the cached software reference of a chip)
    assert report["in_distribution"]["n"] == 25
    assert report["data"]["sha256"] == tree_digest(idx)
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(["evaluate", "--checkpoint", ck, "--out", tmp_path / "e2", "--data",
                        empty, "--samples", "3", "-q"], capsys)
    assert_bad_input(code, err, "has no t10k-images-idx3-ubyte", tmp_path / "e2")


def test_a_wide_bayesian_torch_posterior_reads_the_same_on_both_backends() -> None:
    """A posterior bayesim did not train — bayesian-torch layers with σ > |μ| for most weights
    (softplus(0.5) ≈ 0.97 against μ of order 0.1) and biases of ±3 — on the PCM chip (M1, the
    aihwkit periphery with bound management): the torch backend's probabilities equal numba's
    to 1e-6, and they are not the trivial uniform output."""
    torch.manual_seed(3)
    net = BTNet().eval()
    with torch.no_grad():
        for module in net.modules():
            if hasattr(module, "rho_weight"):
                module.rho_weight.fill_(0.5)
                module.mu_bias.uniform_(-3.0, 3.0)
    x = torch.rand(10, 1, 28, 28)
    probs = [BayesianMachine(net, HardwareConfig(
        device="pcm_ibm_2020", mapping="M1", periphery="aihwkit_standard_io", backend=backend,
        torch_device="cpu", decomposition_inputs=0), warn=False).sample_probs(x, 3, 5).numpy()
        for backend in ("numba", "torch")]
    np.testing.assert_allclose(probs[1], probs[0], rtol=0, atol=1e-6)
    assert probs[0].max(-1).mean() > 0.2
