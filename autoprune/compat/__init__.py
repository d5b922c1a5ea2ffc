"""Other libraries' internals, one module per library: the only places autoprune reads or writes what Torch-Pruning,
Ray and stable-baselines3 do not publish. tests/test_compat.py checks each touchpoint and names the module to mend."""
