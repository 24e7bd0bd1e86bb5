"""docs/RESULTS.md and the README's headline table are what benchmarks/report.py writes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "benchmarks" / "report.py"
RESULTS_PAGE = REPO / "docs" / "RESULTS.md"


def report(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPORT), *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_committed_results_page_and_readme_table_are_current() -> None:
    """A table that no longer matches its result files fails here (and so in CI)."""
    run = report("--check")
    assert run.returncode == 0, f"stale: run python benchmarks/report.py\n{run.stdout[-4000:]}"
    assert run.stderr == ""


def test_check_imports_no_torch() -> None:
    """The check stays fast: it reads JSON and safetensors headers, never a network."""
    code = (
        "import sys; sys.path.insert(0, 'benchmarks'); import report; "
        "rc = report.main(['--check']); print(rc, 'torch' in sys.modules)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.stdout.split() == ["0", "False"], run.stdout + run.stderr


def test_a_changed_result_file_makes_both_tables_stale(tmp_path: Path) -> None:
    results = tmp_path / "results"
    shutil.copytree(REPO / "benchmarks" / "results", results)
    readme, page = tmp_path / "README.md", tmp_path / "RESULTS.md"
    shutil.copy(REPO / "README.md", readme)
    shutil.copy(RESULTS_PAGE, page)
    where = ["--results", results, "--readme", readme, "--out", page]
    assert report("--check", *where).returncode == 0

    score_file = results / "kermany_v2" / "site_score.json"
    score = json.loads(score_file.read_text())
    score["site"]["auc"] = 0.9512
    score_file.write_text(json.dumps(score, indent=2) + "\n")
    stale = report("--check", *where)
    assert stale.returncode == 1
    assert f"{page} is stale" in stale.stderr and f"{readme} is stale" in stale.stderr
    assert "+| [Pneumonia vs normal" in stale.stdout and "AUC 0.951 (" in stale.stdout
    assert page.read_text() == RESULTS_PAGE.read_text(), "--check must write nothing"

    assert report(*where).returncode == 0  # rewrite, then the check passes
    assert report("--check", *where).returncode == 0
    assert "AUC 0.951 (0.970-0.998)" in readme.read_text()
    assert "site: AUC 0.951 (95 % CI 0.970-0.998)" in page.read_text()


def test_readme_links_into_the_results_page_resolve() -> None:
    """Every docs/RESULTS.md#anchor the README names is a heading of the page."""
    slugs = {
        re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", heading).strip().lower())
        for heading in re.findall(r"^#+ (.+)$", RESULTS_PAGE.read_text(), re.MULTILINE)
    }
    anchors = re.findall(r"docs/RESULTS\.md#([\w-]+)", (REPO / "README.md").read_text())
    assert anchors, "the README's headline table links into docs/RESULTS.md"
    assert set(anchors) <= slugs, sorted(set(anchors) - slugs)


def test_every_recorded_figure_says_where_it_came_from() -> None:
    """Figures only ever printed carry their command, protocol, machine, load and source."""
    files = sorted((REPO / "benchmarks" / "results" / "recorded").glob("*.json"))
    assert files
    for path in files:
        rec = json.loads(path.read_text())
        assert {"command", "protocol", "machine", "load", "source", "figures"} <= set(rec), path
        assert {"chosen_on", "scored_on", "seeds"} <= set(rec["protocol"]), path
        assert rec["source"].startswith("recorded:"), path
