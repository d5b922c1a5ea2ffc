"""autoprune: search-based automated neural-network compression for PyTorch."""

__version__ = "0.1.0"
