"""Torch-Pruning's internals, read and written here only.

Torch-Pruning publishes the dependency graph, its groups and the importance estimators; what a group holds (each
dependency's source and target node, its handler and pruning dimension, the traced graph's node types) and the
handler's `pruning_dim` attribute are internals without a stable contract. autoprune reads them to record a group
once and replay it on copies of the model without tracing again, so an upgrade that changes them fails
tests/test_compat.py with a message naming this module. Tested with torch-pruning 1.6.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

Group = tp.Group
Graph = tp.DependencyGraph


@dataclass(frozen=True)
class GroupMember:
    """One dependency of a Torch-Pruning group: what it edits (`target`: a layer, Torch-Pruning's stand-in for a
    cat, split or add included, or a parameter where `kind` is "parameter"; "output" where the group's channels are
    the model's output), from which layer, with which handler along which dimension, and which of the target's
    indices (`indices`) go with which root channel (`roots`)."""

    kind: Literal["module", "parameter", "output"]
    source: Any
    target: Any
    handler: Callable
    pruning_dim: int
    indices: np.ndarray
    roots: np.ndarray


def build_graph(model: nn.Module, example_input: torch.Tensor, ignored_layers: Sequence[nn.Module]) -> Graph:
    """Torch-Pruning's dependency graph of `model`, traced once on `example_input`."""
    return tp.DependencyGraph().build_dependency(model, example_inputs=example_input,
                                                 ignored_layers=list(ignored_layers), verbose=False)


def all_groups(graph: Graph, ignored_layers: Sequence[nn.Module], root_types: tuple[type, ...]) -> list[Group]:
    """Every group whose root layer is of `root_types` and not ignored."""
    return list(graph.get_all_groups(ignored_layers=list(ignored_layers), root_module_types=root_types))


def group_root(group: Group) -> nn.Module:
    """The layer whose output channels a group prunes."""
    return group[0].dep.target.module


def members(group: Group) -> list[GroupMember]:
    """A group's dependencies as plain records."""
    found = []
    for item in group:
        dep, target = item.dep, item.dep.target
        kind = ("output" if target.type == tp.ops.OPTYPE.OUTPUT else
                "parameter" if target.type == tp.ops.OPTYPE.PARAMETER else "module")
        found.append(GroupMember(kind, dep.source.module, target.module, dep.handler, target.pruning_dim,
                                 np.asarray(item.idxs, dtype=np.int64), np.asarray(item.root_idxs, dtype=np.int64)))
    return found


def out_channels(graph: Graph, layer: nn.Module) -> int | None:
    """The number of output channels Torch-Pruning sees for `layer`."""
    return graph.get_out_channels(layer)


def prunes_out(graph: Graph, handler: Callable) -> bool:
    """Whether `handler` removes its layer's output channels (BatchNorm and depthwise convs included)."""
    return bool(graph.is_out_channel_pruning_fn(handler))


def prunes_in(graph: Graph, handler: Callable) -> bool:
    """Whether `handler` removes its layer's input channels."""
    return bool(graph.is_in_channel_pruning_fn(handler))


def output_layers(graph: Graph, root_types: tuple[type, ...]) -> list[nn.Module]:
    """Layers of `root_types` whose outputs reach the model's output without passing another such layer. The
    graph's sinks are its outputs (Torch-Pruning adds explicit OUTPUT nodes only sometimes)."""
    found: list[nn.Module] = []
    stack = [n for n in graph.module2node.values() if n.type == tp.ops.OPTYPE.OUTPUT or not n.outputs]
    seen = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node.module, root_types):
            if node.module not in found:
                found.append(node.module)
            continue
        stack.extend(node.inputs)
    return found


def run_handler(handler: Callable, pruning_dim: int, target: Any, indices: list[int]) -> Any:
    """Remove `indices` from `target` (a layer, pruned in place, or a parameter, returned pruned) along
    `pruning_dim`: a recorded handler is shared by every layer of its type, so its dimension is set each call."""
    handler.__self__.pruning_dim = pruning_dim
    return handler(target, indices)
