"""A run directory and everything in it: its paths, lock and typed summary (directory), the trial store (store),
the report and figures (report, pareto), the exported model (export) and the Optuna export (optuna_export). Every
run file is named, written and read here. Submodules are imported where used: `directory` stays light."""
