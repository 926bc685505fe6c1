"""One registry pattern for every named kind (datasets, models, optimisers, tasks), as Gymnasium's
``register(id, entry_point)``: built-ins register themselves with the same call a user makes.

A :class:`Registry` maps names to entries of one kind. Registering a taken name needs ``overwrite=True``
(built-in names included) unless the entry equals the registered one (a plugin file run twice in one
process, registering the same imported class, is harmless); an unknown name is a ``ValueError`` naming
the kind, the name and the valid names. Iterating a registry (or ``in``) goes over its names in registration order.
"""
from __future__ import annotations

import re
from typing import Generic, Iterator, TypeVar

T = TypeVar("T")
#: Registered names: letters, digits and ``_`` (task names are ``<dataset>-<model>``, so no ``-``).
NAME = re.compile(r"[A-Za-z0-9_]+")


class Registry(Generic[T]):
    """Names -> entries of one ``kind`` (``"model"``, ``"dataset"``, ...)."""

    def __init__(self, kind: str, name_pattern: re.Pattern | None = NAME):
        self.kind = kind
        self._pattern = name_pattern
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, overwrite: bool = False) -> None:
        """Makes ``get(name)`` return ``entry``; ``ValueError`` for a bad name or one taken by another entry
        (unless ``overwrite``)."""
        if not isinstance(name, str) or (self._pattern is not None and not self._pattern.fullmatch(name)):
            raise ValueError(f"{self.kind} name={name!r} must be a non-empty string of letters, digits and '_' "
                             "(no '-': task names are <dataset>-<model>)")
        if name in self._entries and not overwrite and self._entries[name] != entry:
            raise ValueError(f"{self.kind} {name!r} is already registered; pass overwrite=True to replace it")
        self._entries[name] = entry

    def get(self, name: str) -> T:
        """The entry registered as ``name``; ``ValueError`` naming the valid names."""
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self._entries) or 'none'}")
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order (built-ins first)."""
        return tuple(self._entries)

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
