"""autoprune: search-based automated neural-network compression for PyTorch."""

__version__ = "0.1.0"

__all__ = ["search"]


def search(*args, **kwargs):
    """Search a pruning policy under a budget; see autoprune.api.search (imported lazily: torch is heavy)."""
    from autoprune.api import search as _search

    return _search(*args, **kwargs)
