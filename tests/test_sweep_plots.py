"""Sweep plots from results.csv: files written, bad names refused."""

import csv
from pathlib import Path

import pytest

from bayesim.cli import main


def _results(out: Path) -> None:
    out.mkdir()
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["point_id", "status", "config.hardware.adc_bits",
                         "config.hardware.mapping", "config.seed", "metric.auroc_epistemic"])
        for i, (bits, mapping, seed) in enumerate(
                (b, m, s) for b in (4, 6, 8) for m in ("M1", "M3") for s in (0, 1)):
            writer.writerow([f"p{i}", "done", bits, mapping, seed, 0.5 + bits / 20 + seed / 100])
        writer.writerow(["px", "failed", 10, "M1", 0, ""])


def test_heatmap_and_lines_write_png_and_pdf(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    _results(out)
    assert main(["plot", str(out), "--kind", "heatmap", "--x", "hardware.adc_bits", "--y",
                 "hardware.mapping"]) == 0
    assert main(["plot", str(out), "--x", "hardware.adc_bits", "--by", "hardware.mapping"]) == 0
    files = sorted(p.name for p in out.iterdir() if p.suffix in (".png", ".pdf"))
    assert len(files) == 4 and any(f.startswith("heatmap") for f in files)
    assert all((out / f).stat().st_size > 1000 for f in files)


@pytest.mark.parametrize(("args", "message"), [
    (["--metric", "bogus"], "no metric 'bogus'"),
    (["--x", "hardware.nothing"], "no config 'hardware.nothing'"),
    (["--kind", "heatmap"], "needs --y"),
    (["--kind", "pie"], "heatmap or lines"),
])
def test_bad_plot_requests_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  args: list[str], message: str) -> None:
    out = tmp_path / "sweep"
    _results(out)
    assert main(["plot", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "missing")]) == 2
