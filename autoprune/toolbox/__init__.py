"""Tools beside the search: pruning by a given policy or schedule, sensitivity tables, fine-tuning a run's
model. Submodules are imported where used."""
