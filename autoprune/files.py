"""Writing a file whole or not at all, in one place: checkpoints, exported programs, run summaries, reports,
tables and figures."""

from __future__ import annotations

import contextlib
import csv
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A scratch path beside `path` to write to; it replaces `path` when the block ends without an error.

    Readers (and a resumed run) see the old file or the new one, never half of one; a failure leaves the old file
    and no scratch. The scratch keeps `path`'s suffix, which torch.export and ONNX insist on, and is unique, so
    two writers never share one. It does not exist when the block starts.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        yield scratch
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """`path.write_text(text)`, whole or not at all."""
    with replacing(path) as scratch:
        scratch.write_text(text)


def write_csv(path: Path, fieldnames: list[str], rows: Iterable[dict]) -> None:
    """A CSV table with a header, whole or not at all."""
    with replacing(path) as scratch, open(scratch, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)


def save_figure(figure, path: Path, dpi: int = 110) -> None:
    """A matplotlib figure (format from the suffix), whole or not at all; the figure is closed."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    with replacing(path) as scratch:
        figure.savefig(scratch, dpi=dpi)
    plt.close(figure)
