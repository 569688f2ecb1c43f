"""The README's demo table, from the demo's own reports, so that the two cannot drift apart.

    python experiments/demo_table.py runs/demo              # print the table
    python experiments/demo_table.py runs/demo --write      # store the rows and update README.md

``--write`` stores the four reports' headline rows (bayesim.reports.summary_row, with each chip's
worst layer), the run's provenance and each row's evaluation seconds in
docs/results/demo_summary.json and rewrites the block of README.md between the
markers below from them; tests/test_docs.py checks that README.md holds exactly the table this
script renders from that file.
"""

import argparse
import json
from pathlib import Path

from bayesim.reports import REPORT_NAME, summary_row

REPO = Path(__file__).resolve().parents[1]
SUMMARY = REPO / "docs" / "results" / "demo_summary.json"
README = REPO / "README.md"
START, END = "<!-- demo-table:start -->", "<!-- demo-table:end -->"
RUNS = ("", "digital", "analog_pcm", "analog_rram")
"""The demo's four run directories under its --out (bayesim.pipeline.run_demo)."""
NAMES = {"fp32": "fp32", "JQ-4": "digital JQ-4",
         "analog M3 pcm_ibm_2020": "analog PCM, 8 programmed copies (M3)",
         "analog M4 rram_lin2023": "analog RRAM (Lin 2023), 3 devices per side (M4)"}


def read_reports(demo_dir: Path) -> list[dict]:
    """The demo's four reports, in :data:`RUNS` order."""
    return [json.loads((demo_dir / name / REPORT_NAME).read_text()) for name in RUNS]


def row_of(report: dict) -> dict:
    """The headline row of one report, a chip's with its worst layer."""
    row = summary_row(report)
    realised = (report.get("hardware") or {}).get("realised_posterior")
    if realised:
        worst = realised["layers"][realised["worst_layer"]]
        row["worst_layer"] = (f"layer {worst['layer']}, {worst['kind']} "
                              f"{worst['shape'][0]}×{worst['shape'][1]}")
    return row


def rows(demo_dir: Path) -> list[dict]:
    """The headline row of each of the demo's reports."""
    return [row_of(report) for report in read_reports(demo_dir)]


def render(summary: list[dict]) -> str:
    """The Markdown table of the demo's rows (3 decimals, as the demo's runs differ by seed at
    the third)."""

    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    lines = [f"S = {summary[0]['n_samples']}, seed {summary[0]['seed']}:", "",
             "| predictor | accuracy | ECE | AUROC EE | AUROC MI | AUROC PE | W₂/σ, worst layer "
             "| verdict |", "|---|---|---|---|---|---|---|---|"]
    for row in summary:
        worst = ("–" if row["w2_median_worst"] is None
                 else f"{row['w2_median_worst']:.2f} ({row['worst_layer']})")
        lines.append(f"| {NAMES.get(row['predictor'], row['predictor'])} | "
                     f"{cell(row['accuracy'])} | {cell(row['ece'])} | "
                     f"{cell(row['auroc_aleatoric'])} | {cell(row['auroc_epistemic'])} | "
                     f"{cell(row['auroc_epistemic_pe'])} | {worst} | {row['verdict'] or '–'} |")
    return "\n".join(lines)


def readme_block(text: str) -> str:
    """The text between the README's markers (a ValueError when they are missing)."""
    start, end = text.index(START) + len(START), text.index(END)
    return text[start:end].strip("\n")


def write(reports: list[dict]) -> list[dict]:
    """Store the reports' rows, the run's provenance and each row's evaluation seconds, and
    rewrite the README's block from the rows; returns the rows."""
    summary = [row_of(report) for report in reports]
    stored = {"rows": summary, "provenance": reports[0].get("provenance"),
              "eval_seconds": {row["predictor"]: report.get("eval_seconds")
                               for row, report in zip(summary, reports, strict=True)}}
    SUMMARY.write_text(json.dumps(stored, indent=1, ensure_ascii=False) + "\n")
    text = README.read_text()
    start, end = text.index(START) + len(START), text.index(END)
    README.write_text(f"{text[:start]}\n{render(summary)}\n{text[end:]}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo_dir", type=Path, help="the demo's --out directory")
    parser.add_argument("--write", action="store_true",
                        help="store the rows in docs/results/demo_summary.json and update the "
                             "README's table")
    args = parser.parse_args()
    reports = read_reports(args.demo_dir)
    summary = write(reports) if args.write else [row_of(report) for report in reports]
    print(render(summary))


if __name__ == "__main__":
    main()
