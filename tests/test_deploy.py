"""From a finished search to a deployable model, as a user runs it: `autoprune finetune`, `export` in four
formats checked against the model, `report`, safe loading, and element-wise zeros kept through fine-tuning."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

import autoprune
from autoprune.engine import count_cost
from autoprune.engine.unstructured import magnitude_prune, make_permanent, prunable_layers
from autoprune.errors import UserError
from autoprune.models import example_input
from autoprune.models.slim_checkpoint import save_slim
from autoprune.run.export import onnx_macs
from autoprune.settings import ExperimentConfig
from autoprune.toolbox.finetune import finetune
from autoprune.training import accuracy, distillation_loss

pytestmark = pytest.mark.slow  # whole searches or full test sets: not in the fast tier (-m 'not slow')


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoprune.cli", *args], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished CLI search on digits (the shipped digits ResNet-20) at 0.25 flops, fine-tuned 1 epoch."""
    out = tmp_path_factory.mktemp("deploy") / "run"
    done = cli("search", "--data", "digits", "--budget", "0.25flops", "--agent", "random", "--evals", "6",
               "--out", str(out), "--finetune-epochs", "1")
    assert done.returncode == 0, done.stderr
    (out.parent / "printed.txt").write_text(done.stdout)
    return out


@pytest.fixture(scope="module")
def finetuned(run_dir: Path) -> dict:
    done = cli("finetune", str(run_dir), "--epochs", "2")
    assert done.returncode == 0, done.stderr
    return json.loads((run_dir / "finetune.json").read_text())


def test_search_run_has_its_report_figures_and_fine_tuned_model(run_dir: Path) -> None:
    tuned = json.loads((run_dir / "finetune.json").read_text())  # from search --finetune-epochs 1
    assert tuned["epochs"] == 1 and tuned["test_after"] > tuned["test_before"]
    assert (run_dir / "finetuned.pt").is_file() and (run_dir / "slim.pt").is_file()
    names = ("report.md", "channels.png", "progress.png", "candidates.png", "finalists.png")
    assert all((run_dir / n).stat().st_size > 0 for n in names)
    for name in names:
        (run_dir / name).unlink()
    done = cli("report", str(run_dir))  # re-created from the store and best.json alone
    assert done.returncode == 0, done.stderr
    assert all((run_dir / n).stat().st_size > 0 for n in names)
    text = (run_dir / "report.md").read_text()
    assert "0.25flops" in text and "![channels kept](channels.png)" in text


def test_best_json_and_the_report_tell_every_stage_and_where_the_shipped_policy_came_from(run_dir: Path) -> None:
    summary = json.loads((run_dir / "best.json").read_text())
    origin = summary["finalists"]["winner"]["origin"]
    assert summary["shipped_from"] == origin and summary["decision"] == summary["finalists"]["decision"]
    assert set(summary["baselines"]) == {"uniform", "global", "isomorphic", "sensitivity"} and summary["probes"] > 1
    assert summary["search"]["agent"] == "random" and summary["search"]["evaluations"] == 6
    text = (run_dir / "report.md").read_text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[:4] == ["## 1. Baselines", "## 2. Search", "## 3. Finalists", "## 4. Fine-tune"]
    shipped = "the search's policy" if origin == "search" else f"the {origin} baseline's policy"
    assert text.splitlines()[2].startswith(f"Shipped: {shipped} ({summary['decision']})")
    assert f"**{origin} (shipped)**" in text  # marked among the finalists
    assert all(f"| {name} | " in text for name in summary["baselines"])


def test_the_delivered_model_is_timed_on_the_default_deployment_target(run_dir: Path) -> None:
    summary = json.loads((run_dir / "best.json").read_text())
    measured = summary["on_target"]
    assert measured["target"] == ExperimentConfig().target == "onnxruntime,batch=1"
    assert measured["dense_s"] > 0 and measured["delivered_s"] > 0
    assert measured["macs_ratio"] == pytest.approx(summary["slim"]["macs"] / summary["dense"]["macs"])
    speedup = measured["dense_s"] / measured["delivered_s"]
    line = f"On the deployment target (onnxruntime,batch=1): dense {measured['dense_s'] * 1e3:.3f} ms"
    report = (run_dir / "report.md").read_text()
    assert line in report and f"{speedup:.2f}x faster" in report
    printed = " ".join((run_dir.parent / "printed.txt").read_text().split())  # rich wraps long lines
    assert line in printed


def test_finetune_raises_test_accuracy_and_keeps_the_best_held_out_epoch(run_dir: Path, finetuned: dict,
                                                                         digits) -> None:
    assert finetuned["test_after"] > finetuned["test_before"] + 0.05
    scores = [finetuned["heldout_before"]] + [h["heldout"] for h in finetuned["history"]]
    assert finetuned["best_heldout"] == max(scores) and scores.index(max(scores)) == finetuned["best_epoch"]
    model = autoprune.load(run_dir / "finetuned.pt")
    assert accuracy(model, digits.loader("test", batch_size=500)) == pytest.approx(finetuned["test_after"])
    assert "Fine-tuned (2 epochs" in (run_dir / "report.md").read_text()  # the report is refreshed


def test_exports_match_the_model_in_macs_and_outputs(run_dir: Path, finetuned: dict, digits) -> None:
    model = autoprune.load(run_dir / "finetuned.pt")  # export takes the fine-tuned model
    x = example_input(1, 8)
    images = next(iter(digits.loader("test", batch_size=16)))[0]
    with torch.no_grad():
        expected = model(images).numpy()
    for fmt in ("pt2", "torch", "onnx", "torchscript"):
        done = cli("export", str(run_dir), "--format", fmt)
        assert done.returncode == 0, done.stderr
        assert "Warning" not in done.stderr and "deprecated" not in done.stderr  # nothing leaks to the user
    exported = run_dir / "export"
    program = torch.export.load(str(exported / "model.pt2")).module()  # the deployable program, dynamic batch
    assert np.abs(program(images).detach().numpy() - expected).max() <= 1e-5 and program(x).shape == (1, 10)
    state = torch.load(exported / "model_state.pt", weights_only=True)  # plain tensors and data, nothing else
    assert set(state) == {"state_dict", "meta"} and state["meta"]["model"] == "resnet20"
    reloaded = autoprune.load(exported / "model_state.pt")
    assert count_cost(reloaded, x).macs == count_cost(model, x).macs
    assert np.allclose(reloaded(images).detach().numpy(), expected, atol=1e-6)
    session = onnxruntime.InferenceSession(str(exported / "model.onnx"))
    outputs = session.run(None, {"input": images.numpy()})[0]
    assert np.abs(outputs - expected).max() <= 1e-4
    assert onnx_macs(exported / "model.onnx") == count_cost(model, x).macs
    scripted = torch.jit.load(str(exported / "model_torchscript.pt"))
    assert np.abs(scripted(images).detach().numpy() - expected).max() <= 1e-5


@pytest.mark.parametrize(("args", "message"), [
    (("finetune", "missing-run"), "not found"),
    (("export", "RUN", "--format", "pdf"), "unknown export format 'pdf'"),
    (("report", "EMPTY"), "no best.json"),
    (("finetune", "EMPTY"), "no best.json"),
])
def test_bad_run_commands_fail_in_one_line(args: tuple, message: str, run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    args = tuple(str(run_dir) if a == "RUN" else str(tmp_path / "empty") if a == "EMPTY" else a for a in args)
    done = cli(*args)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (run_dir / "export" / "model.pdf").exists()


def test_load_needs_the_dense_architecture_when_it_has_no_name(tmp_path: Path, trained_digits_resnet) -> None:
    path = tmp_path / "mine.pt"
    save_slim(path, trained_digits_resnet, {"model": "MyOwnNet", "in_channels": 1, "num_classes": 10,
                                            "image_size": 8})
    with pytest.raises(UserError, match=r"model=MyNet\(\)"):
        autoprune.load(path)
    x = example_input(1, 8, batch=4)
    loaded = autoprune.load(path, model=trained_digits_resnet)
    assert torch.equal(loaded(x), trained_digits_resnet.eval()(x))
    torch.save({"state_dict": trained_digits_resnet.state_dict(), "meta": {}}, tmp_path / "plain.pt")
    with pytest.raises(UserError, match="not a slim model"):
        autoprune.load(tmp_path / "plain.pt")


def test_element_wise_zeros_stay_zero_through_finetuning(trained_digits_resnet, digits) -> None:
    import copy

    model = copy.deepcopy(trained_digits_resnet)
    magnitude_prune(model, 0.6)
    make_permanent(model)
    zeros = {n: (m.weight == 0).clone() for n, m in prunable_layers(model).items()}
    before = {n: m.weight.detach().clone() for n, m in prunable_layers(model).items()}
    finetune(model, digits, epochs=1, lr=0.05, images=400)
    for name, layer in prunable_layers(model).items():
        assert not hasattr(layer, "weight_mask")  # masks folded back in: a plain model comes out
        assert torch.all(layer.weight[zeros[name]] == 0), name
    assert any(not torch.equal(before[n], m.weight) for n, m in prunable_layers(model).items())  # it did train


def test_distillation_loss_is_zero_only_when_student_matches_teacher(trained_digits_resnet) -> None:
    x = example_input(1, 8, batch=8)
    teacher = trained_digits_resnet.eval()
    with torch.no_grad():
        same = distillation_loss(teacher(x), teacher, x, temperature=4.0)
        other = distillation_loss(torch.zeros(8, 10), teacher, x, temperature=4.0)
    assert abs(float(same)) < 1e-6 and float(other) > 0.01
