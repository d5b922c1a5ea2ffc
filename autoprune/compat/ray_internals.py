"""Ray's private modules (`ray._private`), read and written here only.

Ray publishes no switch that keeps a private instance on loopback and no way to ask, before starting, whether its
dashboard's packages are installed; both live in `ray._private`, which changes between minor releases. An upgrade
that moves them fails tests/test_compat.py with a message naming this module. Tested with Ray 2.60.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

# Ray's switch for running without clusters (its mode on macOS and Windows): the node address stays 127.0.0.1
NO_CLUSTER_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """While a private instance starts: keep its node address on 127.0.0.1, so that every server of it (GCS,
    raylet, workers, agents) listens on loopback only. Ray otherwise replaces a loopback node address with the
    machine's own and listens on every interface. Its no-cluster mode keeps loopback; the switch is read from the
    environment by the Ray processes started here (and the workers they start later), and from Ray's constants,
    read once at import, by this one."""
    from ray._private import ray_constants

    saved_variable, saved_constant = os.environ.get(NO_CLUSTER_VARIABLE), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[NO_CLUSTER_VARIABLE], ray_constants.ENABLE_RAY_CLUSTER = "0", False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_constant
        if saved_variable is None:
            os.environ.pop(NO_CLUSTER_VARIABLE, None)
        else:
            os.environ[NO_CLUSTER_VARIABLE] = saved_variable


def dashboard_dependency_error() -> str | None:
    """What keeps Ray from starting its dashboard (packages of ray[default] missing), asked before Ray starts so
    that nothing is left half-started; None when it can start."""
    from ray._private import utils

    error = utils.get_dashboard_dependency_error()
    return str(error).splitlines()[0] if error else None
