"""Progress bars for long work (rich, on stderr so that stdout stays parseable)."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Update = Callable[[int, int], None]
"""A progress callback: ``update(done, total)``."""


def _noop(done: int, total: int) -> None:
    return None


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[Update]:
    """Yield an ``update(done, total)`` callback that drives one rich progress bar."""
    if not enabled:
        yield _noop
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update
