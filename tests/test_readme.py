"""Every example in README.md and docs/*.md works as written: Python blocks run, and every `autoprune` command line
in a shell block names a real command with real flags and valid values."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from typer.main import get_command

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [(page, index, block) for page in PAGES
          for index, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL))]


def shell_commands(page: Path) -> list[str]:
    """The `autoprune ...` lines of a page's bash blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("autoprune "):
                commands.append(line.strip())
    return commands


COMMANDS = [(page, command) for page in [*PAGES, ROOT / "experiments" / "README.md"] for command in
            shell_commands(page)]


@pytest.mark.parametrize(("page", "index", "block"), BLOCKS,
                         ids=[f"{page.relative_to(ROOT)}-{index}" for page, index, _ in BLOCKS])
@pytest.mark.slow
def test_documented_python_example_runs(page: Path, index: int, block: str, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    exec(compile(block, f"{page.name} python block {index}", "exec"), {"__name__": "__docs__"})
    assert capsys.readouterr().out.strip()  # each example prints what it shows


@pytest.mark.parametrize(("page", "command"), COMMANDS,
                         ids=[f"{page.relative_to(ROOT)}: {command[:60]}" for page, command in COMMANDS])
def test_documented_command_line_parses(page: Path, command: str, monkeypatch) -> None:
    """The command and each flag exist and every value converts (paths that must exist are read from the
    repository's root, where the examples' experiment files live)."""
    from autoprune.cli import app

    monkeypatch.chdir(ROOT)
    root = get_command(app)
    name, *args = shlex.split(command, comments=True)[1:]
    subcommand = root.get_command(click.Context(root), name)
    assert subcommand is not None, f"{page.name}: no command {name!r} in {command!r}"
    try:
        subcommand.make_context(name, args)
    except click.UsageError as exc:
        pytest.fail(f"{page.name}: {command!r} does not parse: {exc.format_message()}")


def test_pages_have_examples() -> None:
    assert sum(page.name == "README.md" for page, _, _ in BLOCKS) >= 1
    assert sum(page.name == "python-api.md" for page, _, _ in BLOCKS) >= 5
    assert len({page for page, _ in COMMANDS}) >= 2 and len(COMMANDS) >= 30
