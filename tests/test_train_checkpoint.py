import json
import struct
from pathlib import Path

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F

from bayesim.bnn.checkpoint import load_checkpoint, save_checkpoint
from bayesim.bnn.layers import kl_divergence, sampling
from bayesim.bnn.models import LeNet5, ModelConfig, build_model, count_weights
from bayesim.bnn.train import TrainConfig, elbo_loss, fit
from bayesim.data.dirty import DataConfig, build_benchmark
from bayesim.errors import CheckpointError, ConfigError


def test_elbo_loss_formula() -> None:
    logits = torch.randn(8, 10)
    y = torch.randint(0, 10, (8,))
    kl = torch.tensor(500.0)
    expected = F.cross_entropy(logits, y) + 0.5 * 500.0 / 1000
    assert elbo_loss(logits, y, kl, n_train=1000, kl_weight=0.5).item() == pytest.approx(
        expected.item())


def test_models_shapes_and_counts() -> None:
    lenet = build_model(ModelConfig(), seed=0)
    assert isinstance(lenet, LeNet5)
    assert lenet(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    # LeNet-5 weights + biases: 156 + 2416 + 48120 + 10164 + 850
    assert count_weights(lenet) == 61706
    mlp = build_model(ModelConfig(arch="mlp", hidden=[16, 8], activation="tanh"), seed=0)
    assert mlp(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert count_weights(mlp) == 784 * 16 + 16 + 16 * 8 + 8 + 8 * 10 + 10


def test_build_model_is_seeded() -> None:
    a, b, c = (build_model(ModelConfig(), seed=s) for s in (1, 1, 2))
    for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(),
                                  c.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)
        if name.endswith("weight_mu"):
            assert not torch.equal(pa, pc)


@pytest.mark.slow
def test_fit_learns_and_is_reproducible(data_root: Path) -> None:
    bench = build_benchmark(DataConfig(ambiguous_fraction=0.0), seed=0)
    config = TrainConfig(epochs=3, batch_size=32, lr=3e-3, kl_warmup_epochs=1)
    cfg = ModelConfig(arch="mlp", hidden=[32])
    runs = []
    steps: list[int] = []
    for _ in range(2):
        model = build_model(cfg, seed=0)
        steps.clear()
        history = fit(model, bench.train, config, seed=0, on_step=lambda s, t: steps.append(s))
        runs.append(model)
    assert steps[-1] == 3 * ((300 + 31) // 32)
    assert history[0].kl_factor == pytest.approx(config.kl_weight) and history[-1].accuracy > 0.9
    for pa, pb in zip(runs[0].parameters(), runs[1].parameters(), strict=True):
        assert torch.equal(pa, pb)  # same seed → bit-identical training
    with sampling(runs[0], "mean"):
        acc = (runs[0](bench.test["clean"].x).argmax(1) == bench.test["clean"].y).float().mean()
    assert acc > 0.9


def test_divergence_is_a_clear_error(data_root: Path) -> None:
    bench = build_benchmark(DataConfig(ambiguous_fraction=0.0), seed=0)
    model = build_model(ModelConfig(arch="mlp", hidden=[8]), seed=0)
    with pytest.raises(ConfigError, match="training diverged.*lower train.lr"):
        fit(model, bench.train, TrainConfig(epochs=1, lr=1e30), seed=0)


def _saved(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    cfg = ModelConfig(arch="mlp", hidden=[8], prior_std=0.5)
    model = build_model(cfg, seed=3)
    path = save_checkpoint(tmp_path / "m.safetensors", model, cfg, seed=3,
                           experiment={"note": "test"})
    return path, model


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    path, model = _saved(tmp_path)
    loaded = load_checkpoint(path)
    assert loaded.model_config.prior_std == 0.5
    assert loaded.metadata["experiment"] == {"note": "test"}
    assert loaded.metadata["versions"]["torch"] == torch.__version__
    for (k, v), v2 in zip(model.state_dict().items(), loaded.model.state_dict().values(),
                          strict=True):
        assert torch.equal(v, v2), k
    x = torch.randn(4, 1, 28, 28)
    with sampling(model, "fixed", seed=1), sampling(loaded.model, "fixed", seed=1):
        torch.testing.assert_close(model(x), loaded.model(x))
    assert kl_divergence(loaded.model).item() == pytest.approx(kl_divergence(model).item())


def _rewrite(path: Path, tensors: dict, metadata: dict) -> None:
    path.write_bytes(safetensors.torch.save(tensors, metadata=metadata))


def _read(path: Path) -> tuple[dict, dict]:
    with safetensors.safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())  # noqa: SIM118


def test_checkpoint_with_edited_metadata_is_rejected(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    tensors, meta = _read(path)
    info = json.loads(meta["bayesim"])
    info["model"]["prior_std"] = 2.0  # same shapes, different meaning
    _rewrite(path, tensors, {**meta, "bayesim": json.dumps(info, sort_keys=True)})
    with pytest.raises(CheckpointError, match="modified after saving"):
        load_checkpoint(path)


def test_checkpoint_with_edited_tensor_is_rejected(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    tensors, meta = _read(path)
    tensors["1.weight_mu"] = tensors["1.weight_mu"] + 1e-3
    _rewrite(path, tensors, meta)
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(path)


def test_checkpoint_with_wrong_shapes_is_rejected(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    tensors, meta = _read(path)
    info = json.loads(meta["bayesim"])
    info["model"]["hidden"] = [9]  # metadata says 9 hidden units, tensors hold 8
    _rewrite(path, tensors, {**meta, "bayesim": json.dumps(info, sort_keys=True)})
    with pytest.raises(CheckpointError, match=r"shape \(8, 784\).*needs \(9, 784\)"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a safetensors file at all", "not a readable safetensors"),
        (b"", "not a readable safetensors"),
    ],
)
def test_garbage_files(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "x").write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "x")


def test_foreign_and_truncated_safetensors(tmp_path: Path) -> None:
    _rewrite(tmp_path / "foreign", {"a": torch.zeros(2)}, {})
    with pytest.raises(CheckpointError, match="no bayesim metadata"):
        load_checkpoint(tmp_path / "foreign")
    path, _ = _saved(tmp_path)
    data = path.read_bytes()
    header_len = struct.unpack("<Q", data[:8])[0]
    path.write_bytes(data[: 8 + header_len + 10])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing")
