"""The applications built from the layers below: a search run (prepare, search loop, finalists, finish) and
sweeps of them. Submodules are imported where used: this package pulls in most of autoprune."""
