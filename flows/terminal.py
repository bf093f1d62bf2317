"""How the command line prints a table: to a terminal at its width, to a pipe or a file whole."""

from __future__ import annotations

import os

from rich.console import Console
from rich.table import Table


def print_table(table: Table, *, stderr: bool = False) -> None:
    """`table` on standard output (or error). A pipe or a file has no width: Rich would fold it to 80
    columns, one letter a line in a table of ten columns (`review list | less`), so it gets the width the
    table needs, unless COLUMNS says otherwise."""
    console = Console(stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        natural = Console(width=100_000).measure(table).maximum  # measured without a width limit
        console = Console(stderr=stderr, width=max(natural, 80))
    console.print(table)
