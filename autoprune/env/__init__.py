"""The AMC-style compression environment (gymnasium)."""

from autoprune.env.compression import OBSERVATION_FIELDS, CompressionEnv

__all__ = ["OBSERVATION_FIELDS", "CompressionEnv"]
