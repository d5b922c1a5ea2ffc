"""Find what can be pruned in a model: coupled channel groups from Torch-Pruning's dependency graph,
each checked by pruning it for real, so that a group we cannot handle is refused, never silently broken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from autoprune.compat import tp_internals as tpi
from autoprune.device import to_model_device
from autoprune.engine.criteria import get_criterion, needs_data, score_group
from autoprune.engine.data_criteria import data_scores
from autoprune.engine.slim import (
    ChannelGroup,
    LayerEdit,
    Policy,
    build_slim,
    masked_equivalent,
    policy_ratios,
)
from autoprune.errors import InputError

ROOT_TYPES = (nn.modules.conv._ConvNd, nn.Linear)
# Norms that mix channels: a dense copy with zeroed consumers no longer matches the slim model exactly.
_CHANNEL_MIXING_NORMS = (nn.LayerNorm, nn.GroupNorm)


@dataclass
class SkippedLayer:
    """A layer left unpruned, and why."""

    name: str
    reason: str


@dataclass
class Analysis:
    """The prunable groups of one model, ready to build slim copies of it for any policy."""

    model: nn.Module
    example_input: torch.Tensor
    groups: list[ChannelGroup]
    skipped: list[SkippedLayer]
    criterion: str
    round_to: int = 1
    _dependency_graph: tpi.Graph | None = field(default=None, repr=False)
    _tp_groups: list[tpi.Group] = field(default_factory=list, repr=False)

    def drops(self, policy: Policy) -> list[np.ndarray]:
        """Root channels each group loses under `policy`."""
        ratios = policy_ratios(self.groups, policy)
        return [g.channels_to_drop(r, self.round_to) for g, r in zip(self.groups, ratios, strict=True)]

    def apply(self, policy: Policy) -> nn.Module:
        """A physically smaller copy of the model for `policy` (keep ratio per group); the original is untouched."""
        slim = build_slim(self.model, self.groups, self.drops(policy))
        slim.train(self.model.training)
        return slim

    def to(self, device: torch.device | str) -> Analysis:
        """Move the model and its example input to `device`, in place (the groups refer to the same modules)."""
        self.model.to(device)
        self.example_input = self.example_input.to(device)
        return self

    def kept_channels(self, policy: Policy) -> list[int]:
        """Channels each group keeps under `policy`."""
        ratios = policy_ratios(self.groups, policy)
        return [g.kept_channels(r, self.round_to) for g, r in zip(self.groups, ratios, strict=True)]

    def isomorphic_scopes(self) -> list[str]:
        """Each group's isomorphism tag, as Torch-Pruning's isomorphic pruning forms them (Fang et al., ECCV
        2024): the sequence of (source type, target type, in/out) of its dependencies. Groups with equal tags
        are ranked against each other; different tags never compete."""
        if len(self._tp_groups) != len(self.groups):
            raise InputError("this analysis was copied to another process without its graph; use the original")
        graph = self._dependency_graph
        tags = []
        for tp_group in self._tp_groups:
            parts = []
            for member in tpi.members(tp_group):
                side = "out" if tpi.prunes_out(graph, member.handler) else "in"
                parts.append(f"{type(member.source).__name__}_{side}>{type(member.target).__name__}_{side}")
            tags.append("|".join(parts))
        return tags

    def __getstate__(self) -> dict:
        """Pickled without Torch-Pruning's traced graph (it holds autograd nodes): a copy sent to a worker
        process builds slim models as the original does; only `rank` needs the graph."""
        state = dict(self.__dict__)
        state["_dependency_graph"], state["_tp_groups"] = None, []
        return state

    def rank(self, criterion: str, batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None) -> None:
        """Re-score every group's channels with another criterion (changes which channels go, not how many).
        Data criteria (apoz, mean_activation, taylor) are measured on `batches` of (x, y)."""
        if needs_data(criterion):
            if batches is None:
                raise InputError(f"criterion {criterion!r} is measured on data: pass batches of (x, y)")
            for group, scores in zip(self.groups, data_scores(self.model, self.groups, batches, criterion),
                                     strict=True):
                group.importance = scores
            self.criterion = criterion
            return
        if len(self._tp_groups) != len(self.groups):
            raise InputError("this analysis was copied to another process without its graph; re-rank the original")
        scorer = get_criterion(criterion)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            for group, tp_group in zip(self.groups, self._tp_groups, strict=True):
                group.importance = score_group(scorer, tp_group, group.channels)
        self.criterion = criterion


def analyse(
    model: nn.Module,
    example_input: torch.Tensor,
    criterion: str = "l1",
    round_to: int = 1,
    ignored_layers: Sequence[nn.Module] = (),
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> Analysis:
    """Channel groups of `model` traced on `example_input`; output layers and unhandled layers are skipped.
    `batches` (x, y) feed the data criteria (apoz, mean_activation, taylor). Traced on the model's device."""
    measured_on_data = needs_data(criterion)  # an unknown name fails before tracing
    if measured_on_data and batches is None:
        raise InputError(f"criterion {criterion!r} is measured on data: pass batches of (x, y)")
    if round_to < 1:
        raise InputError(f"round_to must be a positive integer, got {round_to}")
    _refuse_unsupported(model)
    (example_input,) = to_model_device(model, example_input)
    was_training = model.training
    model.eval()  # trace without touching BatchNorm statistics
    try:
        analysis = _analyse_in_eval_mode(model, example_input, "l1" if measured_on_data else criterion,
                                         round_to, ignored_layers)
    finally:
        model.train(was_training)
    if measured_on_data:
        analysis.rank(criterion, batches)
    return analysis


def _analyse_in_eval_mode(model: nn.Module, example_input: torch.Tensor, criterion: str, round_to: int,
                          ignored_layers: Sequence[nn.Module]) -> Analysis:
    try:
        graph = tpi.build_graph(model, example_input, ignored_layers)
    except Exception as exc:
        raise InputError(
            f"cannot prune {type(model).__name__}: Torch-Pruning's dependency graph fails on it "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:100]}); it is refused rather than pruned wrongly "
            "(channel shuffles via view/transpose are a known cause)"
        ) from None
    names = _module_names(model)
    outputs = tpi.output_layers(graph, ROOT_TYPES)
    skipped = [SkippedLayer(names[m], "produces the model's output") for m in outputs]
    candidates: list[tuple[ChannelGroup, tpi.Group]] = []
    with torch.no_grad():
        reference = model(example_input)
    ignored = list(ignored_layers) + outputs
    position = {m: i for i, (_, m) in enumerate(model.named_modules())}
    tp_groups = sorted(tpi.all_groups(graph, ignored, ROOT_TYPES),
                       key=lambda g: position.get(tpi.group_root(g), len(position)))
    for tp_group in tp_groups:
        root = tpi.group_root(tp_group)
        root_name = names.get(root, str(root))
        group, problem = _describe(len(candidates), root_name, tp_group, graph, model, names)
        if problem:
            skipped.append(SkippedLayer(root_name, problem))
        else:
            candidates.append((group, tp_group))
    analysis = Analysis(model, example_input, [g for g, _ in candidates], skipped, criterion, round_to,
                        graph, [t for _, t in candidates])
    analysis.rank(criterion)
    _refuse_broken_groups(analysis, reference)
    for i, group in enumerate(analysis.groups):
        group.index = i
    return analysis


def _refuse_unsupported(model: nn.Module) -> None:
    """Refuse, before tracing, models whose layers we cannot prune correctly (Torch-Pruning's group search
    also fails to terminate on Swin's windowed attention)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention) or "Attention" in type(module).__name__:
            raise InputError(
                f"cannot prune {type(model).__name__}: attention layer {name!r} ({type(module).__name__}) is not "
                "supported yet; it is refused rather than pruned wrongly (pass a CNN, or ignore those blocks)"
            )


def _module_names(model: nn.Module) -> dict[nn.Module, str]:
    return {module: name for name, module in model.named_modules()}


def _parameter_names(model: nn.Module) -> dict[nn.Parameter, str]:
    return {parameter: name for name, parameter in model.named_parameters()}


def _sides(graph: tpi.Graph, handler: Callable) -> dict[str, bool]:
    """Which channels a Torch-Pruning handler removes (LayerEdit.prunes_out, prunes_in)."""
    out = tpi.prunes_out(graph, handler)
    return {"prunes_out": out, "prunes_in": tpi.prunes_in(graph, handler) and not out}


def _describe(index: int, root_name: str, tp_group: tpi.Group, graph: tpi.Graph, model: nn.Module,
              names: dict[nn.Module, str]
              ) -> tuple[ChannelGroup, str | None]:
    """Our record of one Torch-Pruning group, or the reason it cannot be pruned."""
    channels = tpi.out_channels(graph, tpi.group_root(tp_group))
    edits: list[LayerEdit] = []
    layers: list[str] = []
    channel_groups = 1
    for member in tpi.members(tp_group):
        if member.kind == "output":
            return _empty(index, root_name), "its channels are the model's output"
        roots, indices = member.roots, member.indices
        if member.kind == "parameter":
            name = _parameter_names(model).get(member.target)
            if name is None:
                return _empty(index, root_name), "couples an unnamed parameter"
            edits.append(LayerEdit(name, member.handler, member.pruning_dim, indices, roots, is_parameter=True,
                                   **_sides(graph, member.handler)))
            layers.append(name)
            continue
        module = member.target
        if module not in names:  # Torch-Pruning's stand-ins for cat/split/add: nothing to edit
            continue
        name = names[module]
        if isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1:
            depthwise = module.groups == module.in_channels == module.out_channels
            if not depthwise:
                if len(set(roots.tolist())) != channels or module.groups != channel_groups != 1:
                    return _empty(index, root_name), f"grouped conv {name} sees only part of the group"
                channel_groups = module.groups
        if isinstance(module, nn.GroupNorm):
            channel_groups = max(channel_groups, module.num_groups)
        edits.append(LayerEdit(name, member.handler, member.pruning_dim, indices, roots,
                               **_sides(graph, member.handler)))
        if name not in layers:
            layers.append(name)
    if channels is None or channels < 2:
        return _empty(index, root_name), "has fewer than two channels"
    if channels % channel_groups:
        return _empty(index, root_name), f"{channels} channels do not split into {channel_groups} conv groups"
    group = ChannelGroup(index, root_name, int(channels), channel_groups, layers, edits)
    return group, None


def _empty(index: int, name: str) -> ChannelGroup:
    return ChannelGroup(index, name, 0, 1, [])


def _refuse_broken_groups(analysis: Analysis, reference: torch.Tensor) -> None:
    """Prune every group by half for real and compare with the masked dense model; on any failure, find
    the groups at fault one by one and move them to `skipped` with the reason."""
    if not analysis.groups:
        return
    if _check(analysis, analysis.groups, reference) is None:
        return
    kept: list[ChannelGroup] = []
    kept_tp: list[tpi.Group] = []
    for group, tp_group in zip(analysis.groups, analysis._tp_groups, strict=True):
        problem = _check(analysis, [group], reference)
        if problem is None:
            kept.append(group)
            kept_tp.append(tp_group)
        else:
            analysis.skipped.append(SkippedLayer(group.name, problem))
    analysis.groups, analysis._tp_groups = kept, kept_tp
    if kept and (problem := _check(analysis, kept, reference)) is not None:
        raise InputError(f"pruning {type(analysis.model).__name__} fails even with every faulty group left out "
                         f"({problem}); exclude layers with ignored_layers")


def _check(analysis: Analysis, groups: list[ChannelGroup], reference: torch.Tensor) -> str | None:
    """None if pruning `groups` at half width gives a working model equal to the masked dense one."""
    drops = [g.channels_to_drop(0.5, analysis.round_to) for g in groups]
    try:
        slim = build_slim(analysis.model, groups, drops).eval()
        with torch.no_grad():
            out = slim(analysis.example_input)
    except Exception as exc:
        return f"pruning it breaks the forward pass ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    if not isinstance(out, torch.Tensor) or out.shape != reference.shape:
        return "pruning it changes the output's shape"
    mixes = any(isinstance(m, _CHANNEL_MIXING_NORMS) for m in slim.modules())
    if mixes:  # LayerNorm/GroupNorm over channels legitimately change: shape and finiteness only
        return None if torch.isfinite(out).all() else "pruning it gives non-finite outputs"
    with torch.no_grad():
        expected = masked_equivalent(analysis.model, groups, drops).eval()(analysis.example_input)
    tolerance = 1e-4 * float(expected.abs().max()) + 1e-5
    if not torch.allclose(out, expected, rtol=1e-3, atol=tolerance):
        return "pruning it changes what the remaining channels compute (coupling not understood)"
    return None
