"""`python -m autoprune.cli`: the same as the `autoprune` command."""

from autoprune.cli import main

if __name__ == "__main__":
    main()
