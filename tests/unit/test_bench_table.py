"""The README's benchmark table is generated from bench/results, between its markers."""

from __future__ import annotations

import json
from pathlib import Path

from bench import _table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_holds_the_generated_table_once() -> None:
    text = README.read_text()

    assert text.count(_table.START) == 1
    assert text.count(_table.END) == 1
    table = text.split(_table.START, 1)[1].split(_table.END, 1)[0]
    assert "Machine: " in table
    assert {h.label for h in _table.HEADLINES} <= {
        line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")
    }


def test_rows_carry_each_result_its_size_and_date_and_say_what_was_not_run(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "ingest.json").write_text(json.dumps({"events_per_s": 123456, "events": 1000000}))
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{_table.START}\nold\n{_table.END}\nafter\n")

    assert _table.update(readme, results)

    text = readme.read_text()
    assert text.startswith("before\n")
    assert text.endswith("\nafter\n")
    assert "old" not in text
    row = next(line for line in text.splitlines() if "ingest, events/s" in line)
    assert "123,456" in row
    assert "1,000,000 events" in row
    assert "make bench B=ingest" in row
    assert "| rebuild, events/s | not run |" in text


def test_a_readme_without_markers_is_left_alone(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("no table here\n")

    assert not _table.update(readme, tmp_path)
    assert readme.read_text() == "no table here\n"
