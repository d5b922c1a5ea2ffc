"""Reuse the unchanged front of the network across sensitivity probes: exact scores, about 40 % less work.

A sensitivity probe prunes one group and leaves the rest dense, and every probe of that group (one per keep level)
changes the same layers. Every layer before them computes exactly what it computes in the dense model, on the same
recalibration and held-out batches, in every probe of the group. So the first probe of a group runs the network
split in two at the first changed layers (torch.fx): the unchanged prefix, whose outputs at the split (the
frontier) are kept, and the changed suffix; the group's later probes run the suffix alone on the kept frontier and
take the prefix's recalibrated BatchNorm statistics from the first. The arithmetic is the same as a whole forward,
in the same order and memory layout, so the scores are identical (tests/test_prefix.py compares every probe).

Written here because no library does it: Torch-Pruning and torch.fx split graphs but cache nothing across models.
A model torch.fx cannot trace, an in-place operation across the split, a module with statistics called on both
sides of it, or a split that would save nothing runs the whole model as before.
"""

from __future__ import annotations

import contextlib
import inspect
import operator
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.fx as fx
from torch import Tensor, nn

from autoprune.evaluation.batchnorm import recalibrate_batchnorm

_INPLACE_OPERATORS = {operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ifloordiv,
                      operator.imod, operator.ipow, operator.iand, operator.ior, operator.ixor, operator.ilshift,
                      operator.irshift, operator.imatmul}


def _mutates_input(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Whether `node` may write into its first input: ReLU(inplace=True), x.add_(y), x += y, F.relu(x, inplace=True)."""
    if node.op == "call_module":
        return bool(getattr(modules.get(node.target), "inplace", False))
    if node.op == "call_function":
        name = getattr(node.target, "__name__", "")
        return (node.target in _INPLACE_OPERATORS or _inplace_argument(node)
                or (name.endswith("_") and not name.startswith("_")))
    if node.op == "call_method":
        return node.target.endswith("_") and not node.target.startswith("_")
    return False


def _inplace_argument(node: fx.Node) -> bool:
    """Whether a function call passes `inplace=True`, by keyword or by position (F.relu(x, True))."""
    if node.kwargs.get("inplace") is True:
        return True
    try:
        bound = inspect.signature(node.target).bind(*node.args, **node.kwargs)
    except (TypeError, ValueError):  # a builtin without a signature, or arguments it would refuse
        return False
    return bound.arguments.get("inplace") is True


def _signature(module: nn.Module) -> tuple:
    """What pruning changes in a module: its type, its description (channels, groups) and its tensors' shapes."""
    tensors = [tuple(t.shape) for t in (*module.parameters(), *module.buffers())]
    return type(module), module.extra_repr(), tensors


def _attribute(root: nn.Module, target: str) -> object:
    value: object = root
    for part in target.split("."):
        value = getattr(value, part, None)
    return value


@dataclass
class _Split:
    """One changed-layer set's split of the graph, and what its first probe left for the others."""

    prefix: fx.Graph  # input -> the frontier's values
    suffix: fx.Graph  # the frontier's values -> output
    prefix_modules: list[str]  # modules only the prefix calls: their BatchNorm statistics come from the first probe
    frontier: dict[tuple, tuple[Tensor, tuple[Tensor, ...]]] = field(default_factory=dict)  # (pass, id) -> (x, values)
    # recalibration pass -> prefix module -> its buffers (BatchNorm statistics) after the first probe's pass
    statistics: dict[tuple, dict[str, dict[str, Tensor]]] = field(default_factory=dict)


class PrefixReuse:
    """Splits for the evaluator's probes, keyed by the layers a probe changes; keeps the last `entries` of them."""

    def __init__(self, model: nn.Module, entries: int = 2) -> None:
        self.model = model
        self.entries = entries
        self._graph: fx.Graph | None = None
        self._traced = False
        self._signatures: dict[str, tuple] = {}
        self._splits: OrderedDict[frozenset[str], _Split | None] = OrderedDict()

    def __getstate__(self) -> dict:
        """Sent to another process (a Ray worker) without its graph and kept frontiers: it traces again there."""
        return {"model": self.model, "entries": self.entries}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model"], state["entries"])

    def _trace(self) -> fx.Graph | None:
        if not self._traced:
            self._traced = True
            try:
                graph = fx.symbolic_trace(self.model).graph
            except Exception:  # noqa: BLE001 - any model torch.fx cannot trace simply runs whole
                graph = None
            if graph is not None and sum(n.op == "placeholder" for n in graph.nodes) == 1:
                self._graph = graph
                self._signatures = {name: _signature(m) for name, m in self.model.named_modules()}
        return self._graph

    def split_for(self, slim: nn.Module) -> _Split | None:
        """The split for a slim copy of the model, made on its first use; None where it cannot save anything."""
        graph = self._trace()
        if graph is None:
            return None
        changed = self._changed(graph, slim)
        if not changed:
            return None
        key = frozenset(changed)
        if key not in self._splits:
            self._splits[key] = _split(graph, changed, dict(self.model.named_modules()))
            while len(self._splits) > self.entries:
                self._splits.popitem(last=False)
        self._splits.move_to_end(key)
        return self._splits[key]

    def _changed(self, graph: fx.Graph, slim: nn.Module) -> set[str]:
        slim_modules = dict(slim.named_modules())
        changed = set()
        for node in graph.nodes:
            if node.op == "call_module":
                module = slim_modules.get(node.target)
                if module is None or _signature(module) != self._signatures.get(node.target):
                    changed.add(node.target)
            elif node.op == "get_attr":
                mine, theirs = _attribute(self.model, node.target), _attribute(slim, node.target)
                if not (isinstance(mine, Tensor) and isinstance(theirs, Tensor) and mine.shape == theirs.shape):
                    changed.add(node.target)
        return changed


def _split(graph: fx.Graph, changed: set[str], modules: dict[str, nn.Module]) -> _Split | None:
    """Cut `graph` before the first nodes that `changed` reaches; None where the cut saves nothing, an in-place
    operation crosses it (the split would change what a layer reads) or a module with statistics (BatchNorm) is
    called on both sides of it (the statistics would come from one side only)."""
    nodes = list(graph.nodes)
    data: set[fx.Node] = set()  # nodes whose values depend on the input
    affected: set[fx.Node] = set()  # nodes whose values the pruning changes
    for node in nodes:
        inputs = node.all_input_nodes
        if node.op == "placeholder" or any(a in data for a in inputs):
            data.add(node)
        if (node.op in ("call_module", "get_attr") and node.target in changed) or any(a in affected for a in inputs):
            affected.add(node)
    output = nodes[-1]
    prefix = [n for n in nodes if n in data and n not in affected and n.op != "output"]
    frontier = [n for n in prefix if any(u in affected for u in n.users)]
    if output not in affected or all(n.op == "placeholder" for n in frontier):
        return None
    in_prefix = set(prefix)
    called_before = {n.target for n in prefix if n.op == "call_module"}
    called_after = {n.target for n in affected if n.op == "call_module"}
    if any(next(iter(modules[t].buffers()), None) is not None for t in called_before & called_after):
        return None  # a module with statistics called on both sides: the whole run updates them from both
    for node in nodes:
        if _mutates_input(node, modules) and node.args and isinstance(node.args[0], fx.Node):
            written = node.args[0]
            if written in in_prefix and (node in affected or any(u in affected for u in written.users)):
                return None
    return _Split(prefix=_subgraph(nodes, [], frontier), suffix=_subgraph(nodes, frontier, [output]),
                  prefix_modules=sorted(called_before - called_after))


def _subgraph(nodes: Sequence[fx.Node], inputs: list[fx.Node], outputs: list[fx.Node]) -> fx.Graph:
    """A graph of what `outputs` need (in the original order) taking `inputs` as placeholders (or the original
    input, if none) and returning `outputs` (a tuple, or the original output node's value)."""
    needed: set[fx.Node] = set()
    stack = list(outputs)
    while stack:
        node = stack.pop()
        if node not in needed:
            needed.add(node)
            if node not in inputs:
                stack.extend(node.all_input_nodes)
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {n: graph.placeholder(f"frontier_{i}") for i, n in enumerate(inputs)}
    for node in nodes:
        if node in needed and node not in env:
            env[node] = graph.node_copy(node, lambda a: env[a])
    if outputs[0].op != "output":
        graph.output(tuple(env[n] for n in outputs))
    graph.lint()
    return graph


class SplitRun:
    """One probe's slim model run through a split: the prefix only where its frontier is not kept yet."""

    def __init__(self, split: _Split, slim: nn.Module) -> None:
        self.split = split
        self.slim = slim
        self.prefix = fx.GraphModule(slim, split.prefix)
        self.suffix = fx.GraphModule(slim, split.suffix)

    def _forward(self, tag: tuple, x: Tensor) -> Tensor:
        kept = self.split.frontier.get((tag, id(x)))
        if kept is not None and kept[0] is x:
            values = kept[1]
        else:
            values = self.prefix(x)
            self.split.frontier[(tag, id(x))] = (x, values)
        return self.suffix(*values)

    def recalibrate(self, batches: Sequence[Tensor], layout: bool) -> None:
        """recalibrate_batchnorm on the slim model: the suffix's statistics estimated, the prefix's taken from the
        first probe (which estimated them on the same batches, in the same layout)."""
        tag = ("recalibrate", layout, tuple(id(x) for x in batches))
        kept = self.split.statistics.get(tag)
        if kept is None or not all((tag, id(x)) in self.split.frontier for x in batches):
            kept = None  # this pass runs the prefix on every batch: forget any partial frontier of it
            self.split.frontier = {k: v for k, v in self.split.frontier.items() if k[0] != tag}
        recalibrate_batchnorm(self.slim, batches, forward=lambda x: self._forward(tag, x))
        modules = dict(self.slim.named_modules())
        if kept is None:
            self.split.statistics[tag] = {name: {b: t.clone() for b, t in modules[name].named_buffers()}
                                          for name in self.split.prefix_modules}
            return
        with torch.no_grad():
            for name, buffers in kept.items():
                for buffer_name, value in buffers.items():
                    modules[name].get_buffer(buffer_name).copy_(value)

    @contextlib.contextmanager
    def serving(self, batches: Sequence[tuple[Tensor, Tensor]], tag: tuple) -> Iterator[None]:
        """Inside the block, the slim model's forward runs the suffix on the kept frontier for these batches (the
        whole model for any other input), so a user's metric scores it unchanged."""
        known = {id(x) for x, _ in batches}
        whole: Callable[[Tensor], Tensor] = self.slim.forward

        def forward(x: Tensor) -> Tensor:
            return self._forward(tag, x) if id(x) in known else whole(x)

        self.slim.forward = forward
        try:
            yield
        finally:
            del self.slim.forward
