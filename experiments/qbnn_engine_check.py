"""The one-engine quantization grid against the dedicated engine it replaced (docs/results/qbnn.md,
"What changed"): same points, same numbers.

    python experiments/qbnn_engine_check.py [--old d2e1cd5] [--work DIR]

Checks out ``--old`` (the last commit with bayesim/sweep/qbnn.py, the dedicated engine) into a git
worktree and gives it this tree's QAT seeding (one line, docs/quantization.md: QAT draws its
weight noise from a generator seeded with the experiment seed); without it the old engine
fine-tuned each model from wherever training and evaluation had left its generator, and the two
engines differ by that alone. It then runs a shrunk copy of the grid (an MLP, two strategies, two
widths, PTQ and QAT, both ablations, two seeds) through the old engine in its own spec format and
through this tree's general sweep engine in experiments/seed_qbnn.toml's form, one thread each,
and compares every metric of every point and seed. Reports carry 6 significant digits, so cells
agree to about 1e-5 relative when the models are the same; the script exits 1 if a point is
missing on either side or a cell differs by more than 1e-4 relative.
"""

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from qbnn_tables import KEYS, METRICS, points  # this script's directory is on sys.path

from bayesim.sweep.results import SweepResults

REPO = Path(__file__).resolve().parents[1]

BASE = """
[base.data]
ambiguous_test_images = 20
[base.model]
arch = "mlp"
hidden = [16]
activation = "relu6"
[base.train]
epochs = 1
batch_size = 64
[base.eval]
n_samples = 3
"""

OLD_SPEC = """
seeds = [0, 1]
strategies = ["JQ", "VPQ"]
bits = [2, 4]
modes = ["PTQ", "QAT"]
qat_epochs = 1
""" + BASE + """
[[ablations]]
name = "uniform-sigma"
strategy = "JQ"
bits = [4]
modes = ["PTQ", "QAT"]
set = ["quant.sigma_quantizer='uniform'"]

[[ablations]]
name = "plain-relu"
strategy = "JQ"
bits = [4]
modes = ["QAT"]
model_set = ["model.activation='relu'"]
"""

NEW_SPEC = """
name = "engine-check"
run = "digital"
seeds = [0, 1]
references = ["fp32"]
""" + BASE + """
[base.quant]
strategy = "JQ"
bits = 4
qat_epochs = 1

[[grid]]
"quant.strategy" = ["JQ", "VPQ"]
"quant.bits" = [2, 4]
"quant.qat_epochs" = [0, 1]

[[grid]]
"quant.sigma_quantizer" = ["uniform"]
"quant.bits" = [4]
"quant.qat_epochs" = [0, 1]

[[grid]]
"model.activation" = ["relu"]
"quant.strategy" = ["fp", "JQ"]
"""

SEEDING = "        attach_generator(qmodel, config.seed)\n"


def _run(args: list[str], cwd: Path, pythonpath: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    code = "import sys; from bayesim.cli import main; sys.exit(main(sys.argv[1:]))"
    subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, check=True)


def old_tree(old: str, work: Path) -> Path:
    """A worktree of ``old`` with this tree's QAT seeding."""
    tree = work / "old"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(tree), old],
                   check=True, capture_output=True)
    path = tree / "bayesim" / "pipeline.py"
    text = path.read_text()
    text = text.replace("from bayesim.bnn.layers import bayesian_layers, sampling",
                        "from bayesim.bnn.layers import attach_generator, bayesian_layers, "
                        "sampling")
    marker = "    if quant.qat_epochs:\n"
    if marker not in text or "attach_generator(qmodel" in text:
        raise SystemExit(f"{old}: bayesim/pipeline.py is not the one this check patches")
    path.write_text(text.replace(marker, marker + SEEDING, 1))
    return tree


def rows_by_key(rows: list[dict]) -> dict[tuple, dict]:
    return {(*(str(r[k]) for k in KEYS), str(r["seed"])): r for r in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default="d2e1cd5", help="the commit of the dedicated engine")
    parser.add_argument("--work", type=Path, help="keep the runs here (default: a temp dir)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="qbnn-engine-check-"))
    work.mkdir(parents=True, exist_ok=True)
    tree = old_tree(args.old, work)
    try:
        (work / "old.toml").write_text(OLD_SPEC)
        (work / "new.toml").write_text(NEW_SPEC)
        _run(["sweep", str(work / "old.toml"), "--out", str(work / "old-out"), "-q"], tree,
             tree)
        _run(["sweep", str(work / "new.toml"), "--out", str(work / "new-out"), "-q"], REPO,
             REPO)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                       check=False, capture_output=True)
    with (work / "old-out" / "results.csv").open(newline="") as handle:
        old = rows_by_key(list(csv.DictReader(handle)))
    new = rows_by_key(points(SweepResults.load(work / "new-out")))
    failed = sorted(set(old) ^ set(new))
    for key in failed:
        print(f"only in the {'old' if key in old else 'new'} engine: {key}")
    worst, where = 0.0, None
    for key in sorted(set(old) & set(new)):
        for metric in METRICS:
            a, b = float(old[key][metric]), float(new[key][metric])
            rel = abs(a - b) / max(abs(a), abs(b), 1e-12)
            if rel > worst:
                worst, where = rel, (key, metric, a, b)
    print(f"{len(set(old) & set(new))} points in both engines, {len(failed)} in one only; "
          f"largest relative difference {worst:.2g}" + (f" ({where})" if where else ""))
    return 1 if failed or worst > 1e-4 else 0


if __name__ == "__main__":
    sys.exit(main())
