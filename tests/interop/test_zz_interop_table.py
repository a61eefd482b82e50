"""docs/interop.md is the table the interop tests measured (runs last: pytest orders files by name).

With ``UPDATE_INTEROP_DOC=1`` the file is rewritten from this run's records. Otherwise, when every
interop module ran and every run it declares was recorded, the committed file must equal what this
run measured, so the docs never claim what the suite did not show.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
from tests.interop.matrix import EXPECTED_RUNS, RESULTS, render_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "interop.md"
HERE = Path(__file__).resolve().parent


def test_docs_interop_table_is_what_this_run_measured(request: pytest.FixtureRequest) -> None:
    collected = {Path(str(item.path)).name for item in request.session.items}
    modules = {p.name for p in HERE.glob("test_*.py")}
    missing_modules = sorted(modules - collected)
    recorded = {(r.client.name, r.serializer, r.transport) for r in RESULTS.records}
    missing_runs = sorted(EXPECTED_RUNS - recorded)
    table = render_markdown(RESULTS.records)
    if os.environ.get("UPDATE_INTEROP_DOC") == "1":
        assert not missing_modules and not missing_runs, (
            f"not rewriting {DOC.name} from an incomplete run: modules not run {missing_modules}, "
            f"runs not recorded {missing_runs}")
        DOC.write_text(table)
        return
    if missing_modules or missing_runs:
        reason = f"incomplete interop run (modules not run: {missing_modules}; runs missing: {missing_runs})"
        if os.environ.get("CI") and not missing_modules:
            pytest.fail(reason)
        pytest.skip(reason)
    committed = DOC.read_text() if DOC.exists() else ""
    if committed != table:
        diff = "".join(difflib.unified_diff(committed.splitlines(True), table.splitlines(True),
                                            "docs/interop.md (committed)", "this run"))
        pytest.fail(f"docs/interop.md differs from what this run measured; if the change is intended, "
                    f"rerun with UPDATE_INTEROP_DOC=1:\n{diff}")
