"""Pruning schedules as YAML files, in the spirit of Distiller's: which pruner, what targets, when.

```yaml
pruner: level          # level (exact sparsity), threshold (|w| below) or sensitivity (s x the layer's std)
targets: 0.8           # one value for every conv/linear layer, or {layer name: value}
schedule: agp          # one_shot, iterative, agp or lottery
epochs: 4              # training epochs (per round for iterative and lottery)
unit: epoch            # start, end and frequency count epochs or steps
start: 0
end: 2
frequency: 1
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autoprune.settings import read_yaml, validated


class ScheduleConfig(BaseModel):
    """One pruning schedule: which pruner, what targets, when."""

    model_config = ConfigDict(extra="forbid")

    pruner: Literal["level", "threshold", "sensitivity"] = Field(
        "level", description="level (exact sparsity), threshold (|w| below) or sensitivity (s x the layer's std)")
    targets: float | dict[str, float] = Field(description="one value for every conv/linear layer, or {layer name: "
                                                          "value}")
    schedule: Literal["one_shot", "iterative", "agp", "lottery"] = Field("one_shot", description="when to prune")
    epochs: int = Field(1, ge=0, description="training epochs (per round for iterative and lottery)")
    unit: Literal["epoch", "step"] = Field("epoch", description="what start, end and frequency count")
    start: int = Field(0, ge=0, description="AGP: when pruning starts")
    end: int | None = Field(None, ge=0, description="AGP: when it reaches the targets (default: the end of training)")
    frequency: int = Field(1, ge=1, description="AGP: prune every this many units")
    initial: float = Field(0.0, ge=0, lt=1, description="AGP's starting sparsity")
    rounds: int = Field(3, ge=1, description="iterative and lottery: pruning rounds")
    rewind: Literal["init"] | int = Field("init", description="lottery: back to the starting weights, or to those "
                                                              "after N epochs")
    lr: float = Field(0.01, gt=0, description="the training's learning rate")
    images: int | None = Field(None, ge=1, description="training images per epoch (default: all)")

    @model_validator(mode="after")
    def _consistent(self) -> ScheduleConfig:
        values = [self.targets] if isinstance(self.targets, float | int) else list(self.targets.values())
        if self.pruner == "level" and not all(0 <= v < 1 for v in values):
            raise ValueError("level targets are sparsities in [0, 1)")
        if any(v < 0 for v in values):
            raise ValueError("targets must be 0 or more")
        if self.schedule in ("agp", "lottery") and self.pruner != "level":
            raise ValueError(f"{self.schedule} is defined on sparsities: use pruner: level")
        if self.schedule == "agp" and self.end is not None and self.end <= self.start:
            raise ValueError("end must come after start")
        if isinstance(self.rewind, int) and self.rewind >= max(self.epochs, 1):
            raise ValueError("rewind epoch must be within the first round's epochs")
        return self


def load_schedule(path: str | Path) -> ScheduleConfig:
    """A schedule YAML file, validated; one-line errors naming the field."""
    return validated(ScheduleConfig, read_yaml(Path(path), "schedule"), f"schedule {Path(path).name}")
