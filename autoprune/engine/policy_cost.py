"""Exact MACs of a policy without building the slim model: every conv/linear layer's MACs scale with the
fraction of its input and output channels that survive, and analysis tells which groups shrink which layer.

Searchers, budgets and the compression environment evaluate this thousands of times, so it must be cheap
(microseconds) where building and counting a slim model costs tens of milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from autoprune.bisection import bracket
from autoprune.engine.analysis import Analysis
from autoprune.engine.cost import count_cost
from autoprune.engine.slim import Policy


@dataclass
class _LayerTerm:
    name: str
    macs: int
    in_channels: int
    out_channels: int
    scales_with_input: bool  # False for depthwise convs: each output channel reads one input channel


class PolicyCostModel:
    """MACs per sample of the slim model for any policy of one analysed model."""

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        cost = count_cost(analysis.model, analysis.example_input)
        self.dense_macs = cost.macs
        modules = dict(analysis.model.named_modules())
        self._layers: list[_LayerTerm] = []
        index: dict[str, int] = {}
        for row in cost.layers:
            if row.name in index:  # a layer called twice: add its MACs up
                self._layers[index[row.name]].macs += row.macs
                continue
            module = modules[row.name]
            depthwise = isinstance(module, nn.modules.conv._ConvNd) and module.groups == row.in_channels > 1
            index[row.name] = len(self._layers)
            self._layers.append(_LayerTerm(row.name, row.macs, row.in_channels, row.out_channels, not depthwise))
        n_layers, n_groups = len(self._layers), len(analysis.groups)
        # indices removed from each layer's inputs / outputs per dropped root channel of each group
        self._in_per_root = np.zeros((n_layers, n_groups))
        self._out_per_root = np.zeros((n_layers, n_groups))
        for g, group in enumerate(analysis.groups):
            for edit in group.edits:
                if edit.module_name not in index or edit.is_parameter:
                    continue
                per_root = len(edit.indices) / group.channels
                target = self._out_per_root if edit.prunes_out else self._in_per_root
                target[index[edit.module_name], g] = max(target[index[edit.module_name], g], per_root)
        self._macs = np.array([t.macs for t in self._layers], dtype=np.float64)
        self._ins = np.array([t.in_channels for t in self._layers], dtype=np.float64)
        self._outs = np.array([t.out_channels for t in self._layers], dtype=np.float64)
        self._scales_in = np.array([t.scales_with_input for t in self._layers])
        self._channels = np.array([g.channels for g in analysis.groups], dtype=np.float64)

    @property
    def layer_names(self) -> list[str]:
        """The conv and linear layers, in the order `layer_widths` gives them."""
        return [t.name for t in self._layers]

    def layer_widths(self, policy: Policy) -> tuple[np.ndarray, np.ndarray]:
        """Input and output channels of every conv and linear layer of `analysis.apply(policy)`."""
        return self.widths_for_kept(np.array(self.analysis.kept_channels(policy), dtype=np.float64))

    def widths_for_kept(self, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Input and output channels of every layer when each group keeps `kept` channels."""
        dropped = self._channels - kept
        return self._ins - self._in_per_root @ dropped, self._outs - self._out_per_root @ dropped

    def input_groups(self, layer: int) -> np.ndarray:
        """Indices of the groups whose pruning narrows `layer`'s input."""
        return np.flatnonzero(self._in_per_root[layer])

    def output_groups(self, layer: int) -> np.ndarray:
        """Indices of the groups whose pruning narrows `layer`'s output."""
        return np.flatnonzero(self._out_per_root[layer])

    def macs(self, policy: Policy) -> int:
        """MACs per sample of `analysis.apply(policy)`, computed without building it."""
        in_kept, out_kept = self.layer_widths(policy)
        in_fraction = np.where(self._scales_in, in_kept / self._ins, 1.0)
        return int(round(float(np.sum(self._macs * (out_kept / self._outs) * in_fraction))))

    def fraction(self, policy: Policy) -> float:
        """MACs of the slim model relative to the dense model."""
        return self.macs(policy) / self.dense_macs


def uniform_keep_ratio(model: PolicyCostModel, target_fraction: float, iterations: int = 30) -> float:
    """Largest keep ratio that, applied to every group, stays within `target_fraction` of the dense MACs."""
    groups = len(model.analysis.groups)
    ratio, _ = bracket(lambda r: r > 0 and model.fraction([r] * groups) <= target_fraction, good=0.0, bad=1.0,
                       steps=iterations)
    return ratio
