"""Model zoo, torchvision and user models by name; checkpoints that never unpickle code."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from autoprune.engine import analyse
from autoprune.errors import UserError
from autoprune.models import ZOO, build_model, example_input, load_checkpoint, load_weights, save_checkpoint


@pytest.mark.parametrize("name", list(ZOO))
@pytest.mark.parametrize(("channels", "classes", "size"), [(1, 10, 28), (3, 7, 32)])
def test_zoo_models_take_any_channels_and_classes(name: str, channels: int, classes: int, size: int) -> None:
    model = build_model(name, channels, classes).eval()
    assert model(example_input(channels, size, batch=2)).shape == (2, classes)


def test_torchvision_model_on_grayscale_and_user_factory() -> None:
    model = build_model("resnet18", 1, 5).eval()
    assert model(example_input(1, 32)).shape == (1, 5)
    user = build_model("tests.fixtures.user_models:tiny_cnn", 1, 4).eval()
    assert user(example_input(1, 8)).shape == (1, 4)
    assert len(analyse(user, example_input(1, 8)).groups) == 2
    for bad, match in [("no_such_net", "unknown model"), ("tests.fixtures.nothing:f", "cannot import"),
                       ("tests.fixtures.user_models:not_a_model", "not a torch.nn.Module")]:
        with pytest.raises(UserError, match=match):
            build_model(bad, 1, 10)


def test_checkpoint_round_trip_and_wrong_model(tmp_path: Path) -> None:
    model = build_model("resnet20", 1, 10)
    save_checkpoint(tmp_path / "m.pt", model, {"test_accuracy": 0.5})
    fresh = build_model("resnet20", 1, 10)
    assert load_weights(fresh, tmp_path / "m.pt") == {"test_accuracy": 0.5}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values(),
                                                 strict=True))
    with pytest.raises(UserError, match="do not fit"):
        load_weights(build_model("vgg11", 1, 10), tmp_path / "m.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp files left


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_and_corrupt_checkpoints_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.marker = marker
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"state_dict": exploit}, f)
    torch.save({"state_dict": {"w": torch.zeros(1)}, "meta": {"x": exploit}}, tmp_path / "evil2.pt")
    for path in (evil, tmp_path / "evil2.pt"):
        with pytest.raises(UserError):
            load_checkpoint(path)
    assert not marker.exists()
    save_checkpoint(tmp_path / "good.pt", build_model("resnet20", 1, 10), {})
    data = (tmp_path / "good.pt").read_bytes()
    for name, content in [("truncated.pt", data[: len(data) // 2]), ("garbage.pt", b"\x80\x04garbage")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(UserError, match="not a readable"):
            load_checkpoint(tmp_path / name)
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
