"""The deployment target: where the delivered model will run (runtime, batch size, threads, precision), and its
latency measured there. Not to be confused with autoprune.runtime, which is where a search's evaluations run.

One spelling everywhere (`--target`, `target:` in an experiment file, `autoprune.search(target=...)`):
`RUNTIME[,batch=N][,threads=N][,device=D][,precision=P]`, e.g. `onnxruntime,batch=1,threads=2`. The default
(autoprune.settings.DEFAULT_TARGET) is ONNX Runtime on the CPU at batch 1 with the runtime's own thread count:
the most common way a small vision model is served, single requests, as a user who tunes nothing gets it; MACs
translate worst into milliseconds there (issue 39's measurements). Latency is timed alone, models in
alternation, the median of many rounds.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autoprune.errors import InputError

RUNTIMES = ("onnxruntime", "torch")
PRECISIONS = ("fp32", "fp16")
MAX_BATCH = 4096  # the largest batch an exported program accepts (its batch dimension is dynamic)


@dataclass(frozen=True)
class DeploymentTarget:
    """Runtime (onnxruntime or torch eager), batch size, threads (0: the runtime's default), device and
    precision of the deployed model."""

    runtime: str = "onnxruntime"
    batch: int = 1
    threads: int = 0
    device: str = "cpu"
    precision: str = "fp32"

    @classmethod
    def parse(cls, text: str) -> DeploymentTarget:
        """`RUNTIME[,batch=N][,threads=N][,device=D][,precision=P]`; a one-line error names what is wrong."""
        example = "e.g. onnxruntime,batch=1,threads=2 or torch,batch=64"
        parts = [p.strip() for p in str(text).split(",")]
        if not parts[0] or parts[0] not in RUNTIMES:
            raise InputError(f"deployment target {text!r}: the runtime must be one of {', '.join(RUNTIMES)}; "
                             f"{example}")
        values: dict[str, str] = {}
        for part in parts[1:]:
            key, _, value = part.partition("=")
            if key not in ("batch", "threads", "device", "precision") or not value or key in values:
                raise InputError(f"deployment target {text!r}: {part!r} is not batch=N, threads=N, device=D or "
                                 f"precision=P (each once); {example}")
            values[key] = value
        try:
            batch, threads = int(values.get("batch", 1)), int(values.get("threads", 0))
        except ValueError:
            raise InputError(f"deployment target {text!r}: batch and threads are whole numbers; {example}") from None
        if not 1 <= batch <= MAX_BATCH or threads < 0:
            raise InputError(f"deployment target {text!r}: batch must be 1 to {MAX_BATCH} and threads 0 (the "
                             f"runtime's default) or more; {example}")
        precision = values.get("precision", "fp32")
        device = values.get("device", "cpu")
        if precision not in PRECISIONS or (precision == "fp16" and device == "cpu"):
            raise InputError(f"deployment target {text!r}: precision is fp32, or fp16 on a GPU; {example}")
        target = cls(parts[0], batch, threads, device, precision)
        target.check_available()
        return target

    def __str__(self) -> str:
        text = f"{self.runtime},batch={self.batch}"
        if self.threads:
            text += f",threads={self.threads}"
        if self.device != "cpu":
            text += f",device={self.device}"
        return text + (f",precision={self.precision}" if self.precision != "fp32" else "")

    def providers(self) -> list[str]:
        """ONNX Runtime's execution providers for this target, in order of preference."""
        return (["CUDAExecutionProvider", "CPUExecutionProvider"] if self.device.startswith("cuda")
                else ["CPUExecutionProvider"])

    def check_available(self) -> None:
        """A one-line error when this machine cannot run the target (no ONNX Runtime, no such GPU or provider)."""
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise InputError(f"deployment target device {self.device!r}: use cpu or cuda[:N]")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"deployment target {self}: this machine has no CUDA GPU; time on the CPU "
                             "(device=cpu) or run where the GPU is")
        if self.runtime == "onnxruntime":
            try:
                import onnxruntime
            except ImportError:
                raise InputError("deployment target onnxruntime: ONNX Runtime is not installed; pip install "
                                 "onnxruntime, or use --target torch") from None
            if self.device.startswith("cuda") and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                raise InputError(f"deployment target {self}: this ONNX Runtime has no CUDA provider; pip install "
                                 "onnxruntime-gpu, or time on the CPU")


def write_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """`model` as ONNX (torch.onnx's torch.export-based exporter) with a dynamic batch dimension, at `path`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model.eval(), (example,), dynamo=True, input_names=["input"],
                                    output_names=["logits"],
                                    dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},),
                                    verbose=False)
    program.save(str(path))


class _Runner:
    """One model made ready to run on a target: `run()` makes one forward pass of the target's batch."""

    def __init__(self, model: nn.Module, example: torch.Tensor, target: DeploymentTarget, scratch: Path) -> None:
        self.target = target
        shape = (target.batch, *example.shape[1:])
        dtype = torch.float16 if target.precision == "fp16" else torch.float32
        if target.runtime == "torch":
            self.model = _copy_to(model, target.device, dtype)
            self.batch = torch.randn(shape, device=target.device, dtype=dtype)
            return
        import onnxruntime

        graph = _onnx_for_timing(_copy_to(model, "cpu", torch.float32), example[:1].float().cpu(), scratch)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = target.threads  # 0: ONNX Runtime's default
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(graph, options, providers=target.providers())
        self.feed = {self.session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(shape, np.float32)}

    def run(self) -> None:
        if self.target.runtime == "onnxruntime":
            self.session.run(None, self.feed)
            return
        with torch.inference_mode():
            self.model(self.batch)
        if self.target.device.startswith("cuda"):
            torch.cuda.synchronize(self.target.device)


def _onnx_for_timing(model: nn.Module, example: torch.Tensor, scratch: Path) -> bytes:
    """`model` as an ONNX graph to time: from torch.onnx's TorchScript-based exporter where this torch still has it
    (under a second where the torch.export-based one takes several; ONNX Runtime fuses both graphs alike), else
    from `write_onnx`."""
    import io

    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), buffer, dynamo=False, input_names=["input"],
                              output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        return buffer.getvalue()
    except Exception:  # noqa: BLE001  (an exporter removed or failing on this model: the one export uses)
        path = scratch / f"{id(model)}.onnx"
        write_onnx(model, example, path)
        return path.read_bytes()


def _copy_to(model: nn.Module, device: str, dtype: torch.dtype) -> nn.Module:
    import copy

    return copy.deepcopy(model).eval().to(device=device, dtype=dtype)


def target_latencies(models: Mapping[str, nn.Module], example: torch.Tensor, target: DeploymentTarget,
                     rounds: int = 30, warmup: int = 5, seconds: float = 2.0, most: int = 1000) -> dict[str, float]:
    """{name: median seconds of one batch on `target`}, the models timed in alternation (one pass each per round,
    so a busy moment of a shared machine hits them alike): at least `rounds` rounds and `seconds` of timing (a
    fast model gets more rounds: sub-millisecond medians on a shared CPU move by tens of percent over 30), at most
    `most`; torch's thread count is restored afterwards."""
    threads = torch.get_num_threads()
    if target.runtime == "torch" and target.threads:
        torch.set_num_threads(target.threads)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            runners = {name: _Runner(model, example, target, Path(scratch)) for name, model in models.items()}
            times: dict[str, list[float]] = {name: [] for name in runners}
            for _ in range(warmup):
                for runner in runners.values():
                    runner.run()
            begun, done = time.perf_counter(), 0
            while done < most and (done < rounds or time.perf_counter() - begun < seconds):
                for name, runner in runners.items():
                    start = time.perf_counter()
                    runner.run()
                    times[name].append(time.perf_counter() - start)
                done += 1
    finally:
        torch.set_num_threads(threads)
    return {name: statistics.median(values) for name, values in times.items()}
