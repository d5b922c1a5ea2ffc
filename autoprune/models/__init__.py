"""Model zoo, torchvision and user models, and safe checkpoints."""

from autoprune.models.checkpoint import load_checkpoint, load_weights, save_checkpoint
from autoprune.models.registry import ZOO, build_model, example_input, torchvision_names
from autoprune.models.shipped import CHECKPOINT_DIR, load_model, shipped_checkpoint

__all__ = [
    "CHECKPOINT_DIR",
    "ZOO",
    "build_model",
    "example_input",
    "load_checkpoint",
    "load_model",
    "load_weights",
    "save_checkpoint",
    "shipped_checkpoint",
    "torchvision_names",
]
