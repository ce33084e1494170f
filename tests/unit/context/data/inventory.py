"""Inventory management."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from events import log_event

DEFAULT_PATH = Path("inventory.json")


def parse_quantity(raw: str) -> int:
    """Parse a quantity like '12' or '3x4'."""
    if "x" in raw:
        left, right = raw.split("x", 1)
        return int(left) * int(right)
    return int(raw)


@dataclass
class Item:
    name: str
    quantity: int = 0
    tags: list[str] = field(default_factory=list)

    def total_weight(self, unit: float) -> float:
        return self.quantity * unit


class Inventory:
    """A collection of items."""

    def __init__(self, path: Path = DEFAULT_PATH) -> None:
        self.path = path
        self.items: dict[str, Item] = {}

    def add(self, name: str, raw_quantity: str) -> Item:
        item = self.items.setdefault(name, Item(name))
        item.quantity += parse_quantity(raw_quantity)
        return item

    def save(self) -> None:
        data = {name: item.quantity for name, item in self.items.items()}
        self.path.write_text(json.dumps(data))

    def restock(self, names: list[str]) -> int:
        count = 0
        for name in names:
            item = self.add(name, "1")
            count += item.total_weight(1.0)
        log_event("restock", count)
        return count
