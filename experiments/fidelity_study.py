"""Which cheap score predicts accuracy after fine-tuning, where it matters (issue 14, part 1)?

Candidates: the top distinct policies of real searches (TPE, annealing, GA; 100 evaluations each) plus random
policies, for each model at 0.25 flops. Truth: held-out accuracy (all 5,000 images) after the fixed final
fine-tune (`autoprune.toolbox.finetune.finetune`: 2 full epochs, SGD lr 0.01, cosine, best epoch kept), the same for
every candidate. Scores, each with its measured cost per candidate:
- `recal_acc`: accuracy after BatchNorm recalibration (the search's score today), 2,000 held-out images;
- `recal_loss`: the recalibrated model's cross-entropy on them (negated: higher is better);
- `kd_loss`: its KL divergence from the dense model's outputs on them (negated);
- `ftN` / `kdN`: accuracy after N steps of the fine-tune recipe (the schedule compressed into N steps), without
  and with distillation from the dense model, N = 50, 200, 500.

Reported per model and score: Spearman rho over all candidates, Kendall tau within the top 20 % by truth, and the
regret of the score's pick (truth of the truly best candidate minus truth of the score's choice), in points.

Headroom: the allocations a user tries first (uniform, Torch-Pruning's global and isomorphic rankings, the
sensitivity-threshold allocation) get the same truth, outside the rankings; the best search candidate's truth
minus the best of theirs bounds what any score could gain over them by picking among these candidates.

Every measurement is written to experiments/results/fidelity_study.json as it finishes; a rerun resumes, and the
measurements are taken in passes (cheap scores, truth, 50 and 200 steps first; distillation; then 500 steps;
last, the truth again with another fine-tune seed for the top 20 %: the noise ceiling of every ranking there) so
that a partial run already answers the main question; after the first, a pass measures one score for every
candidate before the next. `--report` only rewrites the tables from what is there.

    python experiments/fidelity_study.py                       # resnet20 then mobilenetv2
    python experiments/fidelity_study.py --models mobilenetv2 --only-pass 4   # the noise ceiling before pass 3
    python experiments/fidelity_study.py --models resnet20 --report
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

import autoprune
from autoprune.budget import Budget
from autoprune.data import load_data
from autoprune.engine import analyse
from autoprune.evaluation import Evaluator, Fidelity, policy_hash
from autoprune.models import example_input, load_model
from autoprune.problem import SearchSpace
from autoprune.run.store import TrialStore
from autoprune.searchers import make_searcher
from autoprune.searchers.baselines import baseline_policies, sensitivity_policy
from autoprune.toolbox.finetune import finetune

RESULTS = Path(__file__).parent / "results"
OUT_JSON, OUT_MD = RESULTS / "fidelity_study.json", RESULTS / "fidelity_study.md"
RUNS = Path("runs/fidelity")
BUDGET = "0.25flops"
AGENTS = ("tpe", "anneal", "ga")
SEARCH_EVALS = 100
TOP, RANDOM = 30, 10
TRUTH_EPOCHS = 2
STEPS = (50, 200, 500)
# measurement passes: what a partial study needs first
# the truth again with fine-tune seed 1, on the top 20 % by truth only: how well one fine-tune ranks the top
# candidates itself, the ceiling for every score's Kendall tau and regret there
REPEAT = "truth_seed1"
PASSES = (("recal", "truth", "ft50", "ft200"), ("kd50", "kd200"), ("ft500", "kd500"), (REPEAT,))
SCORES = ("recal_acc", "recal_loss", "kd_loss", *(f"{k}{n}" for k in ("ft", "kd") for n in STEPS))


def load_results() -> dict:
    return json.loads(OUT_JSON.read_text()) if OUT_JSON.is_file() else {"models": {}}


def save_results(results: dict) -> None:
    tmp = OUT_JSON.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, OUT_JSON)


def candidates(model: str, space: SearchSpace) -> list[dict]:
    """Top distinct policies of three real searches plus random policies, each with its origin."""
    found: dict[str, dict] = {}
    for agent in AGENTS:
        out = RUNS / f"{model}-{agent}"
        print(f"[{model}] search {agent} ({SEARCH_EVALS} evaluations) -> {out}", flush=True)
        autoprune.search(model, data="fashion-mnist", budget=BUDGET, agent=agent, evals=SEARCH_EVALS, seed=0,
                         out=out, resume=(out / "store.sqlite").is_file(), finalists=0, finetune_epochs=0)
        for result in TrialStore(out / "store.sqlite").results():
            if result.feasible and result.complete:
                entry = found.setdefault(result.policy_hash, {"policy": result.policy, "origin": agent,
                                                              "search_score": result.score})
                entry["search_score"] = max(entry["search_score"], result.score)
    ranked = sorted(found.values(), key=lambda c: -c["search_score"])[:TOP]
    randoms = [p.policy for p in make_searcher("random", space, seed=123).ask(RANDOM)]
    ranked += [{"policy": list(p), "origin": "random", "search_score": None} for p in randoms]
    uniform = space.project(space.uniform(1.0))
    ranked.append({"policy": uniform, "origin": "uniform", "search_score": None})
    unique = {policy_hash(c["policy"]): c for c in ranked}
    return [{"hash": h, **c} for h, c in unique.items()]


def losses(evaluator: Evaluator, slim: torch.nn.Module, dense_logits: list[torch.Tensor]) -> tuple[float, float]:
    """Cross-entropy and KL(dense || slim) of a built slim model on the evaluator's held-out batches."""
    ce = kl = 0.0
    count = 0
    with torch.no_grad():
        for (x, y), teacher in zip(evaluator.heldout, dense_logits, strict=True):
            logits = slim(x)
            ce += float(F.cross_entropy(logits, y, reduction="sum"))
            kl += float(F.kl_div(F.log_softmax(logits, 1), F.log_softmax(teacher, 1), reduction="sum",
                                 log_target=True))
            count += len(y)
    return ce / count, kl / count


def measure(name: str, candidate: dict, evaluator: Evaluator, data, dense_logits) -> dict:
    """One measurement of one candidate: {score name: value, cost name: seconds}."""
    policy = candidate["policy"]
    start = time.perf_counter()
    if name == "recal":
        result = evaluator(policy)
        ce, kl = losses(evaluator, evaluator.build(policy), dense_logits)
        cost = time.perf_counter() - start
        return {"recal_acc": result.score, "recal_loss": -ce, "kd_loss": -kl, "flops_ratio": result.flops_ratio,
                "cost_recal_acc": result.wall_time, "cost_recal_loss": cost, "cost_kd_loss": cost}
    if name in ("truth", REPEAT):
        seed = 0 if name == "truth" else 1
        outcome = finetune(evaluator.build(policy), data, TRUTH_EPOCHS, lr=0.01, seed=seed)
        suffix = "" if seed == 0 else "_seed1"
        return {f"truth{suffix}": outcome.best_heldout, f"truth_test{suffix}": outcome.test_after,
                f"cost_truth{suffix}": time.perf_counter() - start}
    steps, distill = int(name[2:]), name.startswith("kd")
    evaluator.distill = distill
    try:
        result = evaluator(policy, Fidelity(train_steps=steps))
    finally:
        evaluator.distill = False
    return {name: result.score, f"cost_{name}": time.perf_counter() - start}


def reference_policies(space: SearchSpace, evaluator: Evaluator) -> dict[str, list[float]]:
    """The non-search allocations of compare_pipeline.py, the sensitivity probes scored by `evaluator`."""
    references = baseline_policies(space)
    references["sensitivity"] = sensitivity_policy(space, lambda probes, fidelity: [evaluator(p, fidelity).score
                                                                         for p in probes])
    return references


def reference_row(entry: dict, reference: dict) -> dict:
    """A reference allocation's measurements: the candidate's row when the policy is a candidate, else its own."""
    return entry["measurements"].get(reference["hash"]) or reference.setdefault("measurements", {})


def measure_references(model: str, entry: dict, space: SearchSpace, evaluator: Evaluator, data,
                       dense_logits: list[torch.Tensor], results: dict) -> None:
    """Recalibrated scores and truth of each reference allocation, reusing a candidate's measurements when the
    policy is one of them."""
    if "references" not in entry:
        entry["references"] = {name: {"hash": policy_hash(policy), "policy": policy}
                               for name, policy in reference_policies(space, evaluator).items()}
        save_results(results)
    for name, reference in entry["references"].items():
        row = reference_row(entry, reference)
        for step in ("recal", "truth"):
            if ("recal_acc" if step == "recal" else step) not in row:
                row.update(measure(step, reference, evaluator, data, dense_logits))
                save_results(results)
        print(f"[{model}] reference {name}: truth {row['truth']:.4f}", flush=True)


def top_by_truth(entry: dict) -> list[dict]:
    """The candidates in the top 20 % by truth (the set each score's Kendall tau is taken on), best first."""
    truth = {h: m["truth"] for h, m in entry["measurements"].items() if "truth" in m}
    cut = np.quantile(list(truth.values()), 0.8)
    top = [c for c in entry["candidates"] if truth.get(c["hash"], -1.0) >= cut]
    return sorted(top, key=lambda c: -truth[c["hash"]])


def repeat_ceiling(entry: dict) -> list[str]:
    """The truth's second fine-tune seed on the top 20 %: its Kendall tau with the first, its pick's regret and
    the seed-to-seed differences, once it is measured on the whole set."""
    top = [entry["measurements"][c["hash"]] for c in top_by_truth(entry)]
    if not top or not all(REPEAT in m for m in top):
        measured = sum(REPEAT in m for m in top)
        return [f"{REPEAT}: measured on {measured} of the top {len(top)} so far.", ""] if measured else []
    first, second = np.array([m["truth"] for m in top]), np.array([m[REPEAT] for m in top])
    tau = stats.kendalltau(second, first).statistic
    regret = (first.max() - first[int(np.argmax(second))]) * 100
    gap = (second - first) * 100
    return [f"Noise ceiling: the truth's fine-tune run again with seed 1 on the top 20 % (n={len(top)}): Kendall "
            f"tau with seed 0 {tau:+.3f}, its pick's regret {regret:.2f} points (within the top 20 %); seed 1 minus "
            f"seed 0 {gap.mean():+.2f} points on average, sd {np.std(gap, ddof=1):.2f} (one fine-tune's sd about "
            f"{np.std(gap, ddof=1) / math.sqrt(2):.2f} around that shift). That is how well the truth ranks the top "
            "candidates itself; a score that knew each one's expected fine-tuned accuracy would do only somewhat "
            "better (for a correlation, the square root of the seed-to-seed one).", ""]


def measuring_order(candidates: list[dict], every: int = 3) -> list[dict]:
    """Search candidates best first with a random one after every `every` of them (uniform first): a study cut
    short has both the top candidates (Kendall tau, regret) and a spread (Spearman rho)."""
    uniform = [c for c in candidates if c["origin"] == "uniform"]
    randoms = [c for c in candidates if c["origin"] == "random"]
    ordered = list(uniform)
    for index, candidate in enumerate(c for c in candidates if c["origin"] not in ("uniform", "random")):
        ordered.append(candidate)
        if (index + 1) % every == 0 and randoms:
            ordered.append(randoms.pop(0))
    return ordered + randoms


def run_model(model: str, results: dict, passes: list[int]) -> None:
    data = load_data("fashion-mnist")
    net, _ = load_model(model, data.in_channels, data.num_classes, data.name, None, require_weights=True)
    net.eval()
    analysis = analyse(net, example_input(data.in_channels, data.image_size))
    budget = Budget.parse(BUDGET)
    space = SearchSpace(analysis, budget)
    entry = results["models"].setdefault(model, {})
    if "candidates" not in entry:
        entry["candidates"] = candidates(model, space)
        entry["measurements"] = {}
        save_results(results)
    evaluator = Evaluator(analysis, data, budget, seed=0)
    with torch.no_grad():
        dense_logits = [net(x) for x, _ in evaluator.heldout]
    measured = entry["measurements"]
    for index in passes:
        names = PASSES[index]
        # the first pass goes candidate by candidate (each gets its truth with its cheap scores); later passes go
        # score by score, so a partial pass already ranks every candidate by its first score
        order = top_by_truth(entry) if names == (REPEAT,) else measuring_order(entry["candidates"])
        jobs = [(c, names) for c in order] if index == 0 else [(c, (name,)) for name in names for c in order]
        for candidate, job_names in jobs:
            row = measured.setdefault(candidate["hash"], {})
            for name in job_names:
                if (name if name not in ("recal",) else "recal_acc") in row:
                    continue
                row.update(measure(name, candidate, evaluator, data, dense_logits))
                save_results(results)
                print(f"[{model}] {candidate['hash']} ({candidate['origin']}) {name}: "
                      f"{ {k: round(v, 4) for k, v in row.items() if not k.startswith('cost')} }", flush=True)
        if index == 0:
            measure_references(model, entry, space, evaluator, data, dense_logits, results)
        write_report(results)


def analyse_scores(entry: dict) -> list[dict]:
    """Per score: candidates measured, Spearman rho, Kendall tau in the top 20 % by truth, regret, cost."""
    rows = []
    measured = [m for m in entry["measurements"].values() if "truth" in m]
    for score in SCORES:
        have = [m for m in measured if score in m]
        if len(have) < 5:
            continue
        truth = np.array([m["truth"] for m in have])
        value = np.array([m[score] for m in have])
        top = truth >= np.quantile(truth, 0.8)
        tau = stats.kendalltau(value[top], truth[top]).statistic if top.sum() >= 3 else math.nan
        regret = (truth.max() - truth[int(np.argmax(value))]) * 100
        rows.append({"score": score, "candidates": len(have), "spearman": float(stats.spearmanr(value, truth)[0]),
                     "kendall_top20": float(tau), "top20_size": int(top.sum()), "regret_points": float(regret),
                     "cost_s": float(np.median([m[f"cost_{score}"] for m in have]))})
    return rows


def headroom(entry: dict) -> list[str]:
    """Truth of the reference allocations, of the best search candidate and of the search score's pick."""
    references = {name: reference_row(entry, r) for name, r in entry.get("references", {}).items()}
    references = {name: row for name, row in references.items() if "truth" in row}
    searched = [m for h, m in entry["measurements"].items() if "truth" in m and "recal_acc" in m
                and origin(entry, h) not in ("random", "uniform")]
    if not references or not searched:
        return []
    best = max(searched, key=lambda m: m["truth"])
    pick = max(searched, key=lambda m: m["recal_acc"])
    rows = [*references.items(), ("best search candidate (by truth)", best),
            ("the search's pick (best recal_acc)", pick)]
    top = max(references, key=lambda n: references[n]["truth"])
    return ["| allocation | held-out after fine-tune | test after fine-tune |", "|---|---|---|",
            *(f"| {name} | {row['truth'] * 100:.2f} | {row['truth_test'] * 100:.2f} |" for name, row in rows), "",
            f"Headroom over the best reference ({top}), held-out: best search candidate "
            f"{(best['truth'] - references[top]['truth']) * 100:+.2f} points, the search's pick "
            f"{(pick['truth'] - references[top]['truth']) * 100:+.2f} (test: "
            f"{(best['truth_test'] - references[top]['truth_test']) * 100:+.2f} and "
            f"{(pick['truth_test'] - references[top]['truth_test']) * 100:+.2f}); one fine-tune seed each.", ""]


def origin(entry: dict, policy_hash_: str) -> str:
    return next(c["origin"] for c in entry["candidates"] if c["hash"] == policy_hash_)


def write_report(results: dict) -> None:
    lines = ["# Fidelity study: which cheap score predicts held-out accuracy after fine-tuning", "",
             f"Written by `python experiments/fidelity_study.py` (resumable). Budget {BUDGET}; truth: held-out "
             f"accuracy (5,000 images) after {TRUTH_EPOCHS} full epochs of the final fine-tune (SGD lr 0.01, "
             "cosine, best epoch kept). Scores on 2,000 held-out images; `ftN`/`kdN`: after N steps of the fine-tune "
             "recipe without/with distillation. Kendall tau is taken within the top 20 % of candidates by truth; "
             "regret is truth(best candidate) - truth(the score's pick), in points. Cost: median seconds per "
             "candidate on this 2-core machine (noisy: other jobs ran beside it at times).", ""]
    summary = {}
    for model, entry in results["models"].items():
        rows = analyse_scores(entry)
        summary[model] = rows
        done = sum("truth" in m for m in entry["measurements"].values())
        truths = [m["truth"] for m in entry["measurements"].values() if "truth" in m]
        spread = f"{min(truths):.4f}-{max(truths):.4f}" if truths else "-"
        lines += [f"## {model}: {done} of {len(entry['candidates'])} candidates with truth (range {spread})", "",
                  "| score | candidates | Spearman rho | Kendall tau (top 20 %) | regret (points) | cost (s) |",
                  "|---|---|---|---|---|---|"]
        complete = [r for r in rows if r["candidates"] == done]  # a partial pass ranks a non-random subset
        lines += [f"| {r['score']} | {r['candidates']} | {r['spearman']:.3f} | {r['kendall_top20']:.3f} "
                  f"(n={r['top20_size']}) | {r['regret_points']:.2f} | {r['cost_s']:.1f} |" for r in complete]
        lines.append("")
        lines += [f"{r['score']}: measured on {r['candidates']} of {done} candidates so far (cost {r['cost_s']:.1f} s "
                  "each); ranked here once every candidate has it (a rerun resumes the pass).\n"
                  for r in rows if r not in complete]
        lines += repeat_ceiling(entry)
        lines += headroom(entry)
    results["summary"] = summary
    OUT_MD.write_text("\n".join(lines) + "\n" + results.get("reasoning", ""))
    save_results(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet20,mobilenetv2")
    parser.add_argument("--passes", type=int, default=len(PASSES), help="how many measurement passes to run")
    parser.add_argument("--only-pass", type=int, choices=range(2, len(PASSES) + 1),
                        help="run the first pass (it gives the truth) and then only this one, e.g. 4 before 3")
    parser.add_argument("--report", action="store_true", help="only rewrite the tables")
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = load_results()
    if not args.report:
        for model in args.models.split(","):
            passes = [0, args.only_pass - 1] if args.only_pass else list(range(min(args.passes, len(PASSES))))
            run_model(model, results, passes)
    write_report(results)
    print(OUT_MD.read_text())


if __name__ == "__main__":
    sys.exit(main())
