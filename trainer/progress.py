"""Progress bars for long work; quiet when stderr is not a terminal (logs carry the stages)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def bar(total: int, desc: str) -> tqdm:
    """A progress bar of `total` steps; a no-op object when not on a terminal."""
    return tqdm(total=total, desc=desc, unit="it", leave=False, disable=None, dynamic_ncols=True)


def track(items: Iterable[T], total: int, desc: str) -> Iterator[T]:
    """Iterate while showing progress."""
    yield from tqdm(items, total=total, desc=desc, leave=False, disable=None, dynamic_ncols=True)
