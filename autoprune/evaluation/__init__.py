"""Evaluating policies: slim model, BatchNorm recalibration, metric, reward."""

from autoprune.evaluation.batchnorm import recalibrate_batchnorm
from autoprune.evaluation.evaluator import Evaluator, score_if_feasible, top1_accuracy
from autoprune.evaluation.fidelity import CANDIDATE, Fidelity, Job
from autoprune.evaluation.result import Result, TrainedState, policy_hash

__all__ = ["CANDIDATE", "Evaluator", "Fidelity", "Job", "Result", "TrainedState", "policy_hash",
           "recalibrate_batchnorm", "score_if_feasible", "top1_accuracy"]
