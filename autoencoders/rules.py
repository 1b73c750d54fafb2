"""What one config key accepts (`Rule`) and the shorthands that declare keys with it; the
declarations themselves are in config_keys.py. Imports nothing heavy."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    """What one key accepts, its default and one line of doc. kind: "int", "float", "str", "bool",
    "batches" (Lightning's limit_*_batches: a fraction <= 1.0 or a whole number of batches),
    "classes" (a class index >= 0 or a list of them), "ints" (a list of integers >= 1; `low` is the
    fewest entries), or "net" (model.net: a family named in `choices` or a mapping with a _target_)."""

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: the value must be strictly above `low`
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    nullable: bool = False
    default: Any = None
    doc: str = ""

    def allowed(self) -> str:
        if self.kind == "net":
            return f"a family ({', '.join(self.choices)}) or a mapping with a _target_ (your own network)"
        if self.choices:
            return "one of " + ", ".join(plain_text(choice) for choice in self.choices)
        if self.kind == "batches":
            low, fraction = ("1", "(0, 1]") if self.low_open else ("0", "[0, 1]")
            return f"a fraction in {fraction} (0.25 = a quarter of the batches) or a whole number of batches >= {low}"
        if self.kind == "classes":
            return "a class index >= 0 or a list of class indices" + (" (or null)" if self.nullable else "")
        if self.kind == "ints":
            return "a list of integers >= 1" + (f", at least {self.low:g}" if self.low else " (may be empty: [])")
        noun = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}[self.kind]
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        text = noun + (" " + " and ".join(bounds) if bounds else "")
        return text + (" (or null)" if self.nullable else "")

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if self.kind == "net":
            if isinstance(value, Mapping):
                return isinstance(value.get("_target_"), str) and "." in value["_target_"]
            return isinstance(value, str) and value in self.choices
        if self.choices:  # by type too: 1 == True in Python, but model.probe=1 is not `true`
            return any(type(value) is type(choice) and value == choice for choice in self.choices)
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "str":
            return isinstance(value, str)
        if self.kind == "classes":
            items = list(value) if isinstance(value, (list, tuple)) else [value]
            return all(isinstance(item, int) and not isinstance(item, bool) and item >= 0 for item in items)
        if self.kind == "ints":
            if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
                return False
            items = list(value)
            return len(items) >= (self.low or 0) and all(
                isinstance(item, int) and not isinstance(item, bool) and item >= 1 for item in items
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.kind == "batches":  # Lightning reads an int as batches and a float as a fraction
            return (value > 0 if self.low_open else value >= 0) and (isinstance(value, int) or value <= 1)
        if self.kind == "int" and not isinstance(value, int):  # 2.0 would reach torch as a float
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))


def plain_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def key(kind: str, default: Any, doc: str, **bounds: Any) -> Rule:
    """One key's declaration: its kind, default, range or choices, and one line of doc."""
    return Rule(kind, default=default, doc=doc, **bounds)


def positive_int(default: Any, doc: str, **more: Any) -> Rule:
    return key("int", default, doc, low=1, **more)


def count(default: Any, doc: str) -> Rule:
    return key("int", default, doc, low=0)


def non_negative(default: Any, doc: str) -> Rule:
    return key("float", default, doc, low=0)


def fraction(default: Any, doc: str) -> Rule:
    return key("float", default, doc, low=0, high=1)


def choice(default: Any, doc: str, choices: tuple[Any, ...]) -> Rule:
    return key("str", default, doc, choices=choices)
