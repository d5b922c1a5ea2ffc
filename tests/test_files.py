"""Files are written whole or not at all: a reader (or a resumed run) never finds half of one."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from autoprune.files import replacing, save_figure, write_csv, write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_scratch(tmp_path: Path) -> None:
    path = tmp_path / "summary.csv"
    write_csv(path, ["a", "b"], [{"a": 1, "b": 2}])
    with pytest.raises(RuntimeError), replacing(path) as scratch:
        scratch.write_text("a,b\n3,")  # half a table, then the writer dies
        raise RuntimeError("killed mid-write")
    assert list(csv.DictReader(path.open())) == [{"a": "1", "b": "2"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.csv"]


def test_tables_text_and_figures_replace_the_old_file(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    write_text(tmp_path / "report.md", "old")
    write_text(tmp_path / "report.md", "new")
    write_csv(tmp_path / "t.csv", ["x"], ({"x": i} for i in range(3)))
    figure, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    save_figure(figure, tmp_path / "plot.png")
    assert (tmp_path / "report.md").read_text() == "new"
    assert [r["x"] for r in csv.DictReader((tmp_path / "t.csv").open())] == ["0", "1", "2"]
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the suffix chose the format
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png", "report.md", "t.csv"]
