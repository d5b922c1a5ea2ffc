"""Export a slim model as a `torch.export` program (.pt2: runs without autoprune), a safe PyTorch checkpoint
(state dict + layer sizes, `autoprune.load`), ONNX or TorchScript, and check each export against the model: same
MACs, outputs equal within a tolerance."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from autoprune.device import resolve_device, to_model_device
from autoprune.engine import count_cost
from autoprune.engine.target import MAX_BATCH, write_onnx
from autoprune.errors import AutopruneError, InputError
from autoprune.files import replacing
from autoprune.models.slim_checkpoint import load, save_slim

FORMATS = {"pt2": "model.pt2", "torch": "model_state.pt", "onnx": "model.onnx", "torchscript": "model_torchscript.pt"}
TOLERANCE = 1e-4


@dataclass
class ExportCheck:
    """What was written and how it compares with the model it came from."""

    format: str
    path: Path
    macs: int
    model_macs: int
    max_abs_difference: float

    @property
    def matches(self) -> bool:
        return self.macs == self.model_macs and self.max_abs_difference <= TOLERANCE


def check_format(fmt: str) -> None:
    """One-line error for a format we do not export."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")


def export_model(model: nn.Module, fmt: str, path: Path, images: torch.Tensor, meta: dict[str, Any]) -> ExportCheck:
    """Write `model` in `fmt` to `path` and check the file against it on `images`; raises AutopruneError on a
    mismatch (and removes the file, so nothing wrong is left behind)."""
    check_format(fmt)
    model = model.eval()
    (images,) = to_model_device(model, images)  # traced and checked on the model's device
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        expected = model(images).cpu().numpy()
    example = images[:1]
    macs = count_cost(model, example).macs
    with replacing(path) as tmp:  # written and checked under a scratch name; only a match replaces `path`
        if fmt == "pt2":
            write_program(model, images[:2], tmp)
            loaded = torch.export.load(str(tmp)).module()
            exported_macs, outputs = _traced_macs(loaded, example), _run_torch(loaded, images)
            macs = _traced_macs(model, example)  # counted the same way on both sides
        elif fmt == "torch":
            save_slim(tmp, model, meta)
            loaded = load(tmp)
            exported_macs, outputs = count_cost(loaded, example).macs, _run_torch(loaded, images)
        elif fmt == "torchscript":
            with warnings.catch_warnings():  # TorchScript is deprecated upstream, yet still what many servers load
                warnings.simplefilter("ignore")
                torch.jit.save(torch.jit.trace(model, example), str(tmp))
                loaded = torch.jit.load(str(tmp))
            exported_macs, outputs = _traced_macs(loaded, example), _run_torch(loaded, images)
            macs = _traced_macs(model, example)  # counted the same way on both sides
        else:
            write_onnx(model, example, tmp)
            exported_macs, outputs = onnx_macs(tmp), _run_onnx(tmp, images)
        check = ExportCheck(fmt, path, exported_macs, macs, float(np.abs(outputs - expected).max()))
        if not check.matches:
            raise AutopruneError(f"the {fmt} export does not match the model (MACs {exported_macs:,} vs {macs:,}, "
                                 f"largest output difference {check.max_abs_difference:.2e}); please report this "
                                 "model")
        return check


def _run_torch(model, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(images).cpu().numpy()


def _traced_macs(model, example: torch.Tensor) -> int:
    """MACs from PyTorch's FLOP counter (works on TorchScript modules, where forward hooks do not)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(example)
    return counter.get_total_flops() // 2


def write_program(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """`model` as a torch.export program with a dynamic batch dimension, saved to `path` (.pt2): it loads with
    `torch.export.load(path).module()`, with neither autoprune nor the model's code. `example` holds at least two
    images (torch.export would specialise a batch of one)."""
    program = torch.export.export(model.eval(), (example,), dynamic_shapes=({0: _batch_dim()},))
    torch.export.save(program, str(path))


def _batch_dim():
    return torch.export.Dim("batch", min=1, max=MAX_BATCH)


def _run_onnx(path: Path, images: torch.Tensor) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images.cpu().numpy()})[0]


def onnx_macs(path: Path) -> int:
    """MACs per sample of an ONNX graph's Conv, Gemm and MatMul nodes, from its inferred shapes: counted on the
    file itself, so it shows what ships."""
    import onnx
    from onnx import numpy_helper, shape_inference

    graph = shape_inference.infer_shapes(onnx.load(str(path))).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in
              [*graph.value_info, *graph.output, *graph.input]}
    weights = {i.name: numpy_helper.to_array(i).shape for i in graph.initializer}
    total = 0
    for node in graph.node:
        out = shapes.get(node.output[0])
        if node.op_type == "Conv" and out:
            total += int(np.prod(out[1:])) * int(np.prod(weights[node.input[1]][1:]))
        elif node.op_type in ("Gemm", "MatMul") and out:
            weight = weights.get(node.input[1])
            transposed = node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)
            inner = (weight[1] if transposed else weight[0]) if weight is not None else shapes[node.input[1]][0]
            total += int(np.prod(out[1:])) * int(inner)
    return total


def export_run(run_dir: Path, fmt: str, data_dir: str | None = None, out: Path | None = None,
               device: str = "cpu") -> ExportCheck:
    """Export a finished run's latest slim model (fine-tuned if it was) to run_dir/export/ (or `out`), checked
    against it on 16 test images of the run's data; traced on `device` (a .pt2 program runs where it was traced:
    cpu, the default, runs anywhere)."""
    target = resolve_device(device)
    from autoprune.data import load_data
    from autoprune.models import load_checkpoint
    from autoprune.run.directory import EXPORT_DIR, model_path, read_summary, run_lock

    check_format(fmt)
    read_summary(run_dir)
    with run_lock(run_dir):
        source = model_path(run_dir)
        model, (_, meta) = load(source).to(target), load_checkpoint(source)
        images, _ = next(iter(load_data(meta["data"], data_dir).loader("test", batch_size=16)))
        return export_model(model, fmt, out or run_dir / EXPORT_DIR / FORMATS[fmt], images, meta)
