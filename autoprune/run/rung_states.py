"""The finalists' trained weights between rungs, so that a rung continues its survivors' training instead of
starting again from the pruned weights; kept in the run directory (RUNG_STATES_NAME), so a resumed run continues
too. Written whole or not at all, read with weights_only=True; a missing or damaged file only costs time: the
evaluator then trains the earlier rungs again, to the same weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from autoprune.evaluation import TrainedState
from autoprune.files import replacing


class RungStates:
    """TrainedStates by (policy hash, steps), one file each in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def put(self, key: str, state: TrainedState) -> None:
        with replacing(self._path(key, state.steps)) as scratch:
            torch.save(state.state, scratch)

    def get(self, key: str, steps: int) -> TrainedState | None:
        path = self._path(key, steps)
        if not path.is_file():
            return None
        try:
            return TrainedState(steps, torch.load(path, map_location="cpu", weights_only=True))
        except Exception:  # damaged: train that policy's earlier rungs again
            return None

    def clear(self) -> None:
        """Remove every state (the finalists are decided)."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def _path(self, key: str, steps: int) -> Path:
        return self.directory / f"{key}-{steps}.pt"
