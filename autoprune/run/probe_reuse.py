"""Reuse an earlier run's sensitivity probes. A probe prunes one group alone to one keep level; its score depends on
the model, the data, the seed's recalibration batches and the scoring settings, never on the budget or the
searcher. So a run at a second budget of the same model (`probes_from`: the first run's directory) takes the probes
from that run's store instead of evaluating them again: on the nets in experiments/ they took 0.26-0.59x the final
fine-tune's time (experiments/results/probe_reuse.md).

Checked before anything is written: the settings a probe's score depends on are the first run's, the dense model's
weights are the same (a fingerprint of its tensors, stored with every run), and the dense model, scored again here
as a probe, scores exactly what it scored there (the same data and scoring). A reused probe is judged again under
this run's budget and reward, and stored in this run's store like one evaluated here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autoprune.errors import InputError, RunDirectoryError
from autoprune.evaluation import Evaluator, Fidelity, Result
from autoprune.run.directory import STORE_NAME
from autoprune.run.store import TrialStore

FINGERPRINT_KEY = "dense_fingerprint"  # stored with the run settings: the dense model's weights, hashed
# the run settings a probe's score depends on (data_dir and the scoring layout are left out: the dense model's
# score, checked again here, tells other data apart, and the layout changes no score)
PROBE_SETTINGS = ("model", "weights", "data", "space", "seed", "heldout_images", "recalibration_batches",
                  "finetune_steps", "candidate_lr", "amp")


def model_fingerprint(model: nn.Module) -> str:
    """A hash of the model's parameters and buffers (names, shapes, dtypes and values): equal only for the same
    weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(value.shape)}:{value.dtype}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:32]


def reused_probes(source: str, settings: dict[str, Any], fingerprint: str, evaluator: Evaluator,
                  dense_policy: list[float], fidelity: Fidelity,
                  searcher_probed_alike: Callable[[dict[str, Any]], bool] = lambda stored: False,
                  ) -> dict[str, Result]:
    """The sensitivity probes stored in the run directory `source`, {policy hash: result}, judged under this run's
    budget and reward, the dense model's scored again here (`fidelity`: how a probe is scored). Raises a one-line
    error when that run's probes would not be this run's.

    The probes scored before that run's search count, and so do its sensitivity searcher's (stored among its
    evaluations) when `searcher_probed_alike(that run's settings)` says it scored probes at `fidelity`."""
    path = Path(source) / STORE_NAME
    if not path.is_file():
        raise RunDirectoryError(f"{source!r} ($probes_from) holds no run (no {STORE_NAME}); name the run directory "
                                "of an earlier search of this model")
    store = TrialStore(path, read_only=True)
    try:
        stored = store.run_config()
        probes = [r for _, r in store.trained_results("probe")]
        if searcher_probed_alike(stored):  # a screened row holds its screening score, not its probe's
            probes += [r for r in store.results("probe") if r.screen_score is None]
    finally:
        store.close()
    # where that run stored its weights' fingerprint, the weights may have moved; else their path must match
    keys = [k for k in PROBE_SETTINGS if k != "weights" or FINGERPRINT_KEY not in stored]
    differ = [k for k in keys if k in stored and stored[k] != settings.get(k)]
    if stored.get(FINGERPRINT_KEY, fingerprint) != fingerprint:
        differ.append("model weights")
    if differ:
        raise InputError(f"the run in {source!r} ($probes_from) probed with other {', '.join(differ)} than this run; "
                         "its probes do not score this run's model: match them or drop $probes_from")
    dense = evaluator(dense_policy, fidelity)
    theirs = next((r for r in probes if r.policy_hash == dense.policy_hash), None)
    if theirs is None:
        raise InputError(f"the run in {source!r} ($probes_from) holds no sensitivity probes (a run probes with "
                         "$finalists on and $finalist_sensitivity levels, or with $agent sensitivity scoring its "
                         "probes as this run does); drop $probes_from")
    if theirs.score != dense.score:
        raise InputError(f"the run in {source!r} ($probes_from) probed other data or scoring: the dense model scores "
                         f"{dense.score:.4f} here and {theirs.score:.4f} there; drop $probes_from")
    return {**{r.policy_hash: evaluator.judged(r) for r in probes}, dense.policy_hash: dense}
