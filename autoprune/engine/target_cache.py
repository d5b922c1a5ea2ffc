"""Measurements of a deployment target kept on disk, so each is made once per machine: the channel multiple it
prefers (engine.rounding) and its per-layer latency tables (engine.latency_model).

An entry is keyed by what the measurement depends on (see `machine_key`); one process measures while the
others started beside it wait for its answer, so searches started together (a sweep's) agree.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from autoprune.engine.target import DeploymentTarget
from autoprune.files import write_text


def cache_dir() -> Path:
    """Where measurements of deployment targets are kept: $AUTOPRUNE_CACHE_DIR, else ~/.cache/autoprune."""
    root = os.environ.get("AUTOPRUNE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "autoprune")
    return Path(root)


def machine_key(target: DeploymentTarget) -> str:
    """What a measurement on `target` depends on besides the model: the target, the runtime's version and the
    machine (processor, cores)."""
    if target.runtime == "onnxruntime":
        import onnxruntime

        version = f"onnxruntime {onnxruntime.__version__}"
    else:
        version = f"torch {torch.__version__}"
    device = torch.cuda.get_device_name(target.device) if target.device.startswith("cuda") else platform.processor()
    return f"{target}|{version}|{platform.machine()}|{device}|{os.cpu_count()}"


def cached(kind: str, key: str, measure: Callable[[], dict[str, Any]], cache: Path | None = None) -> dict[str, Any]:
    """The JSON entry `kind`/`key` of the cache, measured by `measure()` and stored when absent or damaged."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    path = (cache or cache_dir()) / kind / f"{digest}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file():
            try:
                stored = json.loads(path.read_text())
                if isinstance(stored, dict) and stored.get("key") == key:
                    return stored["value"]
            except (ValueError, KeyError):
                pass  # a damaged entry is measured again and replaced
        value = measure()
        write_text(path, json.dumps({"key": key, "value": value}))
        return value
