"""A latency model the search can afford: a policy's latency on the deployment target predicted in microseconds,
from a per-layer lookup table measured once on the target (as NetAdapt and HALP do) instead of timing every
candidate.

Each conv and linear layer is timed alone on the target at the target's batch size (on ONNX Runtime its own
kernel time, from the runtime's profile), for a grid of the input and output widths the search space can reach
(every reachable width where there are few, else `GRID_POINTS` of them, interpolated between). The sum over
layers misses what runs between them (activations, additions, pooling, each call's overhead), so it is
calibrated against whole slim models timed on the target: latency = a + b * sum + c * output values. Tables and
calibration are cached per architecture, widths, least keep ratio, target, runtime version and machine
(engine.target_cache), so a machine measures them once.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autoprune.engine.analysis import Analysis
from autoprune.engine.policy_cost import PolicyCostModel
from autoprune.engine.slim import Policy
from autoprune.engine.target import DeploymentTarget, target_latencies
from autoprune.engine.target_cache import cached, machine_key

GRID_POINTS = 8  # widths measured per layer side where more are reachable; the rest interpolated
CALIBRATION_KEEPS = (0.15, 0.3, 0.55, 0.8)  # uniform policies timed whole (and the least), dense and random ones
CALIBRATION_RANDOM = 12
DENSE_WEIGHT = 4.0  # the dense model counts as four: a budget such as 0.5latency is a fraction of its latency
_SAMPLES = 200  # keep ratios tried per group to list the widths it can reach


@dataclass(frozen=True)
class _Layer:
    """One conv or linear layer as the table times it: its shape apart from the widths."""

    kind: str  # "conv" or "linear"
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...] | str
    dilation: tuple[int, ...]
    depthwise: bool  # one group per input channel: its output width follows its input's
    groups: int  # a grouped conv's fixed group count (1 for a plain one)
    multiplier: int  # a depthwise conv's output channels per input channel
    spatial: tuple[int, ...]  # input size per sample apart from channels (rows of tokens for a linear layer)
    positions: int  # output values per channel and sample: what activations and additions after it scale with

    def key(self, batch: int, c_in: int, c_out: int) -> str:
        return f"{self.kind}|k{self.kernel}|s{self.stride}|p{self.padding}|d{self.dilation}|dw{int(self.depthwise)}" \
               f"|g{self.groups}|m{self.multiplier}|x{self.spatial}|b{batch}|{c_in}->{c_out}"


class LatencyModel:
    """Predicted seconds of one batch of `analysis.apply(policy)` on `target`, for any policy of the analysed model
    at its current `round_to`."""

    def __init__(self, analysis: Analysis, target: DeploymentTarget, min_keep: float = 0.05,
                 cache: Path | None = None) -> None:
        self.target = target
        self.costs = PolicyCostModel(analysis)
        self._layers = _describe_layers(analysis, self.costs.layer_names)
        self._positions = np.array([layer.positions for layer in self._layers], dtype=np.float64)
        self._grids = [self._grid(analysis, i, min_keep) for i in range(len(self._layers))]
        architecture = f"{type(analysis.model).__name__}|{[(g.name, g.channels) for g in analysis.groups]}|" \
                       f"{self._layers}|round_to={analysis.round_to}|min_keep={min_keep:g}|{machine_key(target)}"
        table = cached("latency-table", architecture, lambda: self._measure_table(), cache)
        self._tables = [np.array(t) for t in table["layers"]]
        stored = cached("latency-calibration", architecture,
                        lambda: self._calibrate(analysis, min_keep), cache)
        self.intercept, self.slope = float(stored["intercept"]), float(stored["slope"])
        self.per_value = float(stored["per_value"])
        self.dense_s = self.predict([1.0] * len(analysis.groups))

    def features(self, policy: Policy) -> tuple[float, float]:
        """What the prediction is linear in: the table's seconds for the policy's conv and linear layers (each timed
        alone), and the values they output (what runs between them, activations and additions, scales with)."""
        ins, outs = self.costs.layer_widths(policy)
        return self._sum(ins, outs), float(outs @ self._positions)

    def predict(self, policy: Policy) -> float:
        """Predicted seconds of one batch of the policy's slim model on the target."""
        table_s, values = self.features(policy)
        return self.intercept + self.slope * table_s + self.per_value * values

    def _sum(self, ins: np.ndarray, outs: np.ndarray) -> float:
        total = 0.0
        for (grid_in, grid_out), table, c_in, c_out in zip(self._grids, self._tables, ins, outs, strict=True):
            total += _interpolate(grid_in, grid_out, table, float(c_in), float(c_out))
        return total

    def _grid(self, analysis: Analysis, layer: int, min_keep: float) -> tuple[list[int], list[int]]:
        """The input and output widths the table holds for `layer` (a depthwise conv's are the same)."""
        ins = _reachable(analysis, self.costs, layer, "in", min_keep)
        outs = _reachable(analysis, self.costs, layer, "out", min_keep)
        return (_thin(ins), _thin(outs)) if not self._layers[layer].depthwise else (_thin(ins), [])

    def _measure_table(self) -> dict:
        """Every layer's table: seconds per (input width, output width) of its grid, each timed alone (torch with
        the target's thread count)."""
        threads = torch.get_num_threads()
        if self.target.runtime == "torch" and self.target.threads:
            torch.set_num_threads(self.target.threads)
        try:
            return self._measure_entries()
        finally:
            torch.set_num_threads(threads)

    def _measure_entries(self) -> dict:
        entries: dict[str, float] = {}
        layers = []
        for layer, (grid_in, grid_out) in zip(self._layers, self._grids, strict=True):
            rows = []
            for c_in in grid_in:
                outs = grid_out or [c_in]
                row = []
                for c_out in outs:
                    key = layer.key(self.target.batch, c_in, c_out)
                    if key not in entries:
                        entries[key] = _time_layer(layer, c_in, c_out, self.target)
                    row.append(entries[key])
                rows.append(row)
            layers.append(rows)
        return {"layers": layers}

    def _calibrate(self, analysis: Analysis, min_keep: float) -> dict:
        """The plane latency = a + b * table seconds + c * output values, fitted by least squares to whole slim
        models (dense, uniform and random policies) timed on the target in alternation."""
        groups = len(analysis.groups)
        rng = np.random.default_rng(0)
        policies = [[1.0] * groups] + [[k] * groups for k in (min_keep, *CALIBRATION_KEEPS)]
        policies += [rng.uniform(min_keep, 1.0, groups).tolist() for _ in range(CALIBRATION_RANDOM)]
        models = {str(i): analysis.apply(p).eval() for i, p in enumerate(policies)}
        measured = target_latencies(models, analysis.example_input, self.target, rounds=20, warmup=3, seconds=4.0)
        features = np.array([[1.0, *self.features(p)] for p in policies])
        times = np.array([measured[str(i)] for i in range(len(policies))])
        weights = np.ones(len(policies))
        weights[0] = DENSE_WEIGHT
        intercept, slope, per_value = _fit(features, times, weights)
        return {"intercept": float(intercept), "slope": float(slope), "per_value": float(per_value),
                "calibration": [{"features": f[1:].tolist(), "measured": float(t)}
                                for f, t in zip(features, times, strict=True)]}


def _fit(features: np.ndarray, times: np.ndarray, weights: np.ndarray) -> tuple[float, float, float]:
    """Weighted least squares of times on (1, table seconds, output values); the output values are dropped where
    their coefficient comes out negative (too few distinct policies to tell them apart), and the table is only
    scaled to the dense model where even its own coefficient does."""
    for columns in ((0, 1, 2), (0, 1)):
        chosen = features[:, columns]
        scale = np.abs(chosen).max(axis=0)
        solution, *_ = np.linalg.lstsq(chosen / scale * weights[:, None], times * weights, rcond=None)
        coefficients = dict(zip(columns, solution / scale, strict=True))
        if coefficients[1] > 0 and coefficients.get(2, 0.0) >= 0:
            return coefficients[0], coefficients[1], coefficients.get(2, 0.0)
    return 0.0, float(times[0] / features[0, 1]), 0.0


def _describe_layers(analysis: Analysis, names: Sequence[str]) -> list[_Layer]:
    """Each named conv or linear layer's shape on the analysed model's example input."""
    modules = dict(analysis.model.named_modules())
    inputs: dict[str, tuple[int, ...]] = {}
    outputs: dict[str, tuple[int, ...]] = {}

    def record(name: str):
        def hook(_module: nn.Module, args: tuple, _output: torch.Tensor) -> None:
            inputs.setdefault(name, tuple(args[0].shape[1:]))
            outputs.setdefault(name, tuple(_output.shape[1:]))
        return hook

    hooks = [modules[name].register_forward_hook(record(name)) for name in names]
    try:
        with torch.no_grad():
            analysis.model.eval()(analysis.example_input[:1])
    finally:
        for hook in hooks:
            hook.remove()
    layers = []
    for name in names:
        module, shape = modules[name], inputs[name]
        if isinstance(module, nn.Linear):
            layers.append(_Layer("linear", (), (), (), (), False, 1, 1, (math.prod(shape[:-1]),),
                                 math.prod(shape[:-1])))
            continue
        padding = tuple(module.padding) if isinstance(module.padding, tuple) else str(module.padding)
        depthwise = module.groups > 1 and module.groups == module.in_channels
        layers.append(_Layer("conv", tuple(module.kernel_size), tuple(module.stride), padding, tuple(module.dilation),
                             depthwise, 1 if depthwise else module.groups,
                             module.out_channels // module.in_channels if depthwise else 1, tuple(shape[1:]),
                             math.prod(outputs[name][1:])))
    return layers


def _reachable(analysis: Analysis, costs: PolicyCostModel, layer: int, side: str, min_keep: float) -> list[int]:
    """The widths `layer`'s input or output can take under policies keeping at least `min_keep` of each group."""
    groups = costs.input_groups(layer) if side == "in" else costs.output_groups(layer)
    dense = np.array([g.channels for g in analysis.groups], dtype=np.float64)
    widths = {int(round(costs.widths_for_kept(dense)[0 if side == "in" else 1][layer]))}
    for g in groups:  # each group alone; a layer narrowed by several (a concatenation) is interpolated between
        kept_options = {analysis.groups[g].kept_channels(r, analysis.round_to)
                        for r in np.linspace(min_keep, 1.0, _SAMPLES)}
        for kept in kept_options:
            vector = dense.copy()
            vector[g] = kept
            widths.add(int(round(costs.widths_for_kept(vector)[0 if side == "in" else 1][layer])))
    return sorted(widths)


def _thin(widths: list[int]) -> list[int]:
    """At most GRID_POINTS of `widths`, spread evenly over them, the smallest and largest included."""
    if len(widths) <= GRID_POINTS:
        return widths
    picks = np.unique(np.round(np.linspace(0, len(widths) - 1, GRID_POINTS)).astype(int))
    return [widths[i] for i in picks]


def _interpolate(grid_in: list[int], grid_out: list[int], table: np.ndarray, c_in: float, c_out: float) -> float:
    """The table's value at (c_in, c_out), linear between grid points (held at the edges)."""
    if not grid_out:  # depthwise: one width
        return float(np.interp(c_in, grid_in, table[:, 0]))
    along_out = [np.interp(c_out, grid_out, row) for row in table]
    return float(np.interp(c_in, grid_in, along_out))


def _time_layer(layer: _Layer, c_in: int, c_out: int, target: DeploymentTarget, seconds: float = 0.03,
                least: int = 15) -> float:
    """Median seconds of the layer alone at these widths on the target, one batch."""
    model = _layer_module(layer, c_in, c_out)
    example = torch.randn(1, c_in, *layer.spatial) if layer.kind == "conv" else torch.randn(1, layer.spatial[0],
                                                                                            c_in)
    if target.runtime == "torch":
        return _time_torch(model, example, target, seconds, least)
    return _time_onnxruntime(model, example, target, seconds, least)


def _layer_module(layer: _Layer, c_in: int, c_out: int) -> nn.Module:
    if layer.kind == "linear":
        return nn.Linear(c_in, c_out)
    convolution = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[len(layer.kernel)]
    if layer.depthwise:
        return convolution(c_in, c_in * layer.multiplier, layer.kernel, layer.stride, layer.padding, layer.dilation,
                           groups=c_in)
    return convolution(c_in, c_out, layer.kernel, layer.stride, layer.padding, layer.dilation, groups=layer.groups)


def _time_onnxruntime(model: nn.Module, example: torch.Tensor, target: DeploymentTarget, seconds: float,
                      least: int) -> float:
    """The layer's own kernel time on ONNX Runtime, from the runtime's profile: without the call's overhead and
    the layout conversions around a lone layer, which inside a model run once for many layers."""
    import io
    import json
    import os
    import warnings

    import onnxruntime

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (example,), buffer, dynamo=False, input_names=["input"],
                          dynamic_axes={"input": {0: "batch"}})
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = target.threads
    options.log_severity_level = 3
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.gettempdir(), f"autoprune-layer-{os.getpid()}")
    session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=target.providers())
    feed = {"input": np.random.default_rng(0).standard_normal((target.batch, *example.shape[1:]), np.float32)}
    runs = 0

    def run() -> None:
        nonlocal runs
        session.run(None, feed)
        runs += 1

    _median_time(run, seconds, least)
    profile = Path(session.end_profiling())
    try:
        events = json.loads(profile.read_text())
    finally:
        profile.unlink(missing_ok=True)
    kernels = [e["dur"] for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")
               and not e.get("args", {}).get("op_name", "").startswith("Reorder")]
    per_run = np.array(kernels[len(kernels) - len(kernels) // runs * runs:], dtype=np.float64).reshape(runs, -1).sum(1)
    middle = np.sort(per_run)[runs // 4: runs - runs // 4]  # microseconds, whole: the middle half's mean
    return float(middle.mean()) * 1e-6


def _time_torch(model: nn.Module, example: torch.Tensor, target: DeploymentTarget, seconds: float,
                least: int) -> float:
    dtype = torch.float16 if target.precision == "fp16" else torch.float32
    model = model.eval().to(device=target.device, dtype=dtype)
    batch = torch.randn((target.batch, *example.shape[1:]), device=target.device, dtype=dtype)

    def run() -> None:
        with torch.inference_mode():
            model(batch)
        if target.device.startswith("cuda"):
            torch.cuda.synchronize(target.device)

    return _median_time(run, seconds, least)


def _median_time(run, seconds: float, least: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        run()
    times: list[float] = []
    begun = time.perf_counter()
    while len(times) < least or (time.perf_counter() - begun < seconds and len(times) < 1000):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
