"""The checkpoints we ship reach their promised Fashion-MNIST test accuracy, checked by `autoprune evaluate`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autoprune.data.datasets import DEBIAN_FASHION_MNIST
from autoprune.models import load_checkpoint, shipped_checkpoint

pytestmark = pytest.mark.slow  # whole searches or full test sets: not in the fast tier (-m 'not slow')

TARGETS = {"resnet20": 0.92, "vgg11": 0.91, "mobilenetv2": 0.91}


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="apt-get install dataset-fashion-mnist")
@pytest.mark.parametrize(("model", "target"), TARGETS.items())
def test_shipped_checkpoint_reaches_its_accuracy(model: str, target: float) -> None:
    path = shipped_checkpoint(model, "fashion-mnist")
    assert path is not None, f"{model} checkpoint is not shipped"
    meta = load_checkpoint(path)[1]
    result = subprocess.run([sys.executable, "-m", "autoprune.cli", "evaluate", "--model", model],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    measured = float(result.stdout.split("accuracy ")[1].split()[0])
    assert measured >= target
    assert measured == pytest.approx(meta["test_accuracy"], abs=1e-4)  # the recorded figure is the real one


def test_shipped_digits_checkpoint_is_trained() -> None:
    path = shipped_checkpoint("resnet20", "digits")
    assert path is not None
    result = subprocess.run([sys.executable, "-m", "autoprune.cli", "evaluate", "--model", "resnet20", "--data",
                             "digits"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    measured = float(result.stdout.split("accuracy ")[1].split()[0])
    assert measured >= 0.97 and measured == pytest.approx(load_checkpoint(path)[1]["test_accuracy"], abs=1e-4)
