"""The numbers behind docs/results/bring_your_own.md: the predictive of models from elsewhere
against their own library's Monte-Carlo predictive (the comparisons of
tests/test_bring_your_own.py, with the statistics printed instead of asserted).

    PYTHONPATH=. python experiments/peer_predictive_check.py   # repository root, dev extras
"""

import json
import tempfile
from pathlib import Path

import torch
from pyro.infer import Predictive
from pyro.infer.autoguide import AutoNormal

from bayesim.bnn.checkpoint import load_checkpoint
from bayesim.bnn.layers import attach_generator
from bayesim.bnn.models import ModelConfig
from bayesim.evaluate import SoftwarePredictor
from bayesim.importers import read_posterior, to_checkpoint
from bayesim.machine import BayesianMachine
from tests.test_bring_your_own import EXACT, BTNet, RenamedGuide, Residual, train_pyro


def agreement(a: torch.Tensor, b: torch.Tensor) -> dict:
    se = torch.sqrt(a.var(0) / a.shape[0] + b.var(0) / b.shape[0]).clamp_min(1e-7)
    z = (a.mean(0) - b.mean(0)) / se
    return {"outputs": int(z.numel()),
            "within_4se": round(float((z.abs() <= 4).float().mean()), 4),
            "mean_z2": round(float((z ** 2).mean()), 3),
            "max_abs_z": round(float(z.abs().max()), 2)}


def main() -> None:
    out = {}
    tmp = Path(tempfile.mkdtemp())
    for guide_class in (AutoNormal, RenamedGuide):
        store = tmp / f"{guide_class.__name__}.pt"
        model, guide = train_pyro(guide_class, store)
        ck = to_checkpoint(read_posterior("pyro", store), ModelConfig(arch="mlp", hidden=[8]),
                           tmp / f"{guide_class.__name__}.safetensors")
        x = torch.rand(20, 1, 28, 28)
        with torch.no_grad():
            logits = Predictive(model, guide=guide, num_samples=2000,
                                return_sites=["_RETURN"])(x)["_RETURN"]
        ours = SoftwarePredictor(load_checkpoint(ck).model).sample_probs(x, 2000, seed=1)
        out[f"pyro {guide_class.__name__}"] = agreement(torch.softmax(logits, -1), ours)
    torch.manual_seed(0)
    net = BTNet().eval()
    x = torch.rand(12, 1, 28, 28)
    with torch.no_grad():
        theirs = torch.stack([torch.softmax(net(x)[0], -1) for _ in range(1500)])
    out["bayesian-torch model on the exact chip"] = agreement(
        theirs, BayesianMachine.compile(net, EXACT).sample_probs(x, 1500, seed=3))
    torch.manual_seed(0)
    res = Residual()
    res.train()
    with torch.no_grad():
        for _ in range(3):
            res(torch.rand(32, 1, 28, 28))
    res.eval()
    attach_generator(res, 0)
    x = torch.rand(30, 1, 28, 28)
    out["residual BatchNorm BNN on the exact chip"] = agreement(
        SoftwarePredictor(res).sample_probs(x, 1500, seed=1),
        BayesianMachine.compile(res, EXACT).sample_probs(x, 1500, seed=2))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
