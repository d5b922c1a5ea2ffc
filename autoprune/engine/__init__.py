"""The pruning engine: channel groups, criteria, slim-model construction, element-wise masks, costs."""

from autoprune.engine.analysis import Analysis, SkippedLayer, analyse
from autoprune.engine.cost import Cost, LayerCost, count_cost, measure_latency
from autoprune.engine.criteria import criterion_names, get_criterion, needs_data, register_criterion
from autoprune.engine.slim import ChannelGroup, Policy

__all__ = ["Analysis", "ChannelGroup", "Cost", "LayerCost", "Policy", "SkippedLayer", "analyse", "count_cost",
           "criterion_names", "get_criterion", "measure_latency", "needs_data", "register_criterion"]
