"""The docs say what is true: the README's demo table is the demo's own output, its checkpoint
example runs, and no citation points at a file a reader does not have."""

import json
import re
from pathlib import Path

import pytest

from bayesim.cli import main
from tests.scripts import experiment_module

REPO = Path(__file__).resolve().parents[1]


def demo_table_module():
    return experiment_module("demo_table")


def test_the_readme_demo_table_is_rendered_from_the_stored_demo_output() -> None:
    table = demo_table_module()
    summary = json.loads(table.SUMMARY.read_text())["rows"]
    assert [r["kind"] for r in summary] == ["fp32", "digital", "analog", "analog"]
    assert table.readme_block(table.README.read_text()) == table.render(summary)


def test_the_demo_table_script_reads_a_demo_run(tmp_path: Path, data_root: Path,
                                                tiny_overrides: list[str]) -> None:
    sets = [a for item in tiny_overrides for a in ("--set", item)]
    assert main(["demo", "--out", str(tmp_path / "demo"), "-q", *sets]) == 0
    table = demo_table_module()
    rows = table.rows(tmp_path / "demo")
    text = table.render(rows)
    assert text.count("\n| ") == 5 and "analog PCM, 8 programmed copies (M3)" in text
    chip = json.loads((tmp_path / "demo" / "analog_pcm" / "report.json").read_text())
    assert rows[2]["verdict"] == chip["verdict"]["status"] and "worst_layer" in rows[2]


def python_block(text: str, marker: str) -> str:
    """The ```python block of ``text`` that contains ``marker``."""
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return next(b for b in blocks if marker in b)


def test_the_readme_checkpoint_example_runs(tmp_path: Path, data_root: Path,
                                            tiny_overrides: list[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The example that loads a checkpoint, its benchmark and a shuffled batch, run on a tiny
    checkpoint: the batch is not one class (the clean split is sorted by class)."""
    sets = [a for item in tiny_overrides for a in ("--set", item)]
    assert main(["train", "--config", "experiments/dirty_mnist_lenet.toml", "--out",
                 str(tmp_path / "run"), "-q", *sets]) == 0
    code = python_block((REPO / "README.md").read_text(), "load_model(")
    assert '"runs/demo/model.safetensors"' in code
    code = code.replace('"runs/demo/model.safetensors"', repr(str(tmp_path / "run" /
                                                                  "model.safetensors")))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    assert tuple(namespace["probs"].shape) == (30, 8, 10)
    assert len(set(namespace["y"].tolist())) > 1


OUTSIDE = re.compile(r"(reference/)?\b(hardware|simulators|bnn_software|seeds|DESIGN)\.md\b")


def test_no_citation_points_at_notes_outside_the_repository() -> None:
    hits = []
    for path in [*REPO.glob("docs/**/*.md"), REPO / "README.md", *REPO.glob("bayesim/**/*.py"),
                 *REPO.glob("device_models/*.toml"), *REPO.glob("cost_models/*.toml"),
                 *REPO.glob("experiments/*")]:
        if path.is_file():
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if OUTSIDE.search(line):
                    hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not hits, "\n".join(hits[:20])


@pytest.mark.parametrize("phrase", ["later issue", "next step of this issue", "not yet here",
                                    "`analog` later"])
def test_no_stale_promise_in_the_docs(phrase: str) -> None:
    stale = [str(p.relative_to(REPO)) for p in [*REPO.glob("docs/**/*.md"), REPO / "README.md"]
             if phrase in p.read_text()]
    assert not stale, stale
