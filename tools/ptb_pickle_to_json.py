#!/usr/bin/env python3
"""Converts python-telegram-bot PicklePersistence files to one DictPersistence-shaped JSON
document, the body of edgegram's `POST /admin/import`.

    python tools/ptb_pickle_to_json.py [--path DIR] [--lossy] FILE [FILE ...] > doc.json

Runs with python-telegram-bot installed (`npm run ptb-import` makes a venv with it in
`.venv-ptb/`). The files are read with PTB's own `PicklePersistence`, so whatever PTB can load,
this can:

- a single file (`PicklePersistence(filepath=..., single_file=True)`, PTB's default);
- the five files of `single_file=False`: `<filepath>_bot_data`, `<filepath>_chat_data`,
  `<filepath>_user_data`, `<filepath>_conversations`, `<filepath>_callback_data` (name any
  of them; the others next to it are read too).

The output is what PTB's `DictPersistence` would hold: `{"bot_data": {..}, "chat_data":
{"<id>": {..}}, "user_data": {"<id>": {..}}, "conversations": {"<name>": {"[<chat>, <user>]":
state}}, "callback_data": [[[keyboard_id, access_time, {button_id: data}], ..], {query_id:
keyboard_id}] or null}`.

Values that JSON cannot hold are converted where the conversion is unambiguous, each with a
warning on stderr naming its path: sets become lists, datetimes ISO 8601 text, enums their
values, Telegram objects their `to_dict()`, objects of your own classes (custom
`ContextTypes`) a JSON object of their attributes; integer keys of nested dicts become text
(JSON keys are text). Anything else (bytes, functions, tuple keys, NaN, ...) is an error
naming its path, unless `--lossy` stores its `repr()` instead. Objects of your own classes
are read without your bot's code: a class the pickle names but that cannot be imported (for
example one defined in your bot's `__main__`) is rebuilt from the attributes in the pickle,
and an object rebuilt from one argument (an `Enum` member) becomes that argument. `--path
DIR` puts DIR on the import path when you would rather have the real classes.

Exit status: 0 with the document on stdout; 2 on errors (listed on stderr), nothing printed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import decimal
import enum
import json
import math
import sys
import uuid
from pathlib import Path, PurePath

SECTIONS = ("bot_data", "chat_data", "user_data", "conversations", "callback_data")
SUFFIXES = tuple(f"_{s}" for s in SECTIONS)


class Converter:
    """Turns loaded Python values into JSON values, collecting warnings and errors."""

    def __init__(self, lossy: bool):
        self.lossy = lossy
        self.warnings: list[str] = []
        self.errors: list[str] = []

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(f"{path}: {message}")

    def fail(self, path: str, value: object, message: str) -> object:
        if self.lossy:
            self.warn(path, f"{message}; stored as its repr() (--lossy)")
            return repr(value)
        self.errors.append(f"{path}: {message}")
        return None

    def key(self, key: object, path: str) -> str | None:
        if isinstance(key, str):
            return key
        if isinstance(key, bool) or key is None:
            self.warn(path, f"key {key!r} became the text {json.dumps(key)}")
            return json.dumps(key)
        if isinstance(key, (int, float)) and not (isinstance(key, float) and not math.isfinite(key)):
            self.warn(path, f"key {key!r} became the text \"{key}\" (JSON keys are text)")
            return str(key)
        if isinstance(key, enum.Enum):
            self.warn(path, f"enum key {key!r} became the text of its value")
            return str(key.value)
        converted = self.fail(path, key, f"a key of type {type(key).__name__} cannot be a JSON key")
        return converted if isinstance(converted, str) else None

    def convert(self, value: object, path: str) -> object:
        from telegram import TelegramObject  # imported lazily: --help works without PTB

        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int) and not isinstance(value, enum.Enum):
            return value
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            return self.fail(path, value, f"{value} is not a JSON number")
        if isinstance(value, enum.Enum):
            self.warn(path, f"enum {value!r} stored as its value")
            return self.convert(value.value, path)
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                key = self.key(k, f"{path}.{k!r}")
                if key is None:
                    continue
                if key in out:
                    self.fail(f"{path}.{key}", k, "two keys became the same text")
                    continue
                out[key] = self.convert(v, f"{path}.{key}")
            return out
        if isinstance(value, (list, tuple)):
            return [self.convert(v, f"{path}.{i}") for i, v in enumerate(value)]
        if isinstance(value, (set, frozenset)):
            self.warn(path, f"{type(value).__name__} stored as a list")
            items = [self.convert(v, f"{path}.{i}") for i, v in enumerate(value)]
            try:
                return sorted(items)
            except TypeError:
                return items
        if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
            self.warn(path, f"{type(value).__name__} stored as ISO 8601 text")
            return value.isoformat()
        if isinstance(value, datetime.timedelta):
            self.warn(path, "timedelta stored as seconds")
            return value.total_seconds()
        if isinstance(value, (decimal.Decimal, uuid.UUID, PurePath)):
            self.warn(path, f"{type(value).__name__} stored as text")
            return str(value)
        if isinstance(value, TelegramObject):
            self.warn(path, f"Telegram {type(value).__name__} stored as its to_dict()")
            return value.to_dict(recursive=True)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            self.warn(path, f"dataclass {type(value).__name__} stored as its fields")
            return self.convert(
                {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, path
            )
        if isinstance(value, Missing):
            name = type(value)._edgegram_class
            rebuilt = dict(vars(value))
            if set(rebuilt) == {"args"} and len(rebuilt["args"]) == 1:
                self.warn(path, f"{name} (not importable) stored as its value")
                return self.convert(rebuilt["args"][0], path)
            self.warn(path, f"{name} (not importable) stored as the attributes in the pickle")
            return self.convert(rebuilt, path)
        attributes = object_attributes(value)
        if attributes is not None:
            self.warn(path, f"object of class {type(value).__name__} stored as its attributes")
            return self.convert(attributes, path)
        return self.fail(path, value, f"a value of type {type(value).__name__} has no JSON form")


def object_attributes(value: object) -> dict | None:
    """The attributes of an instance of a plain class (custom ContextTypes), else None."""
    if isinstance(value, type) or callable(value) or isinstance(value, (bytes, bytearray)):
        return None
    if type(value).__module__ == "builtins":
        return None
    attributes: dict = {}
    if hasattr(value, "__dict__"):
        attributes.update(vars(value))
    for cls in type(value).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if isinstance(slot, str) and slot not in ("__dict__", "__weakref__") and hasattr(value, slot):
                attributes[slot] = getattr(value, slot)
    if not attributes and not hasattr(value, "__dict__"):
        return None
    return {k: v for k, v in attributes.items() if not k.startswith("__")}


class Missing:
    """Stands in for a class a pickle names that cannot be imported: keeps what the pickle
    gives it (constructor arguments, attribute state)."""

    _edgegram_class = "?"

    def __init__(self, *args, **kwargs):
        if args:
            self.args = list(args)
        self.__dict__.update(kwargs)

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:
            for part in state:
                if isinstance(part, dict):
                    self.__dict__.update(part)
        elif isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.state = state


_missing: dict[tuple[str, str], type] = {}


def tolerate_missing_classes() -> None:
    """Makes PTB's unpickler rebuild classes it cannot import as [`Missing`] objects."""
    try:
        from telegram.ext import _picklepersistence as pickle_module
    except ImportError:
        return
    base = getattr(pickle_module, "_BotUnpickler", None)
    if base is None:
        return

    class Tolerant(base):
        def find_class(self, module, name):
            try:
                return super().find_class(module, name)
            except (ImportError, AttributeError):
                key = (module, name)
                if key not in _missing:
                    _missing[key] = type(name, (Missing,), {"_edgegram_class": f"{module}.{name}"})
                return _missing[key]

    pickle_module._BotUnpickler = Tolerant


def conversation_key(key: object) -> object:
    """PTB's DictPersistence writes a conversation key as `json.dumps(tuple)`: `[1, 2]`."""
    return json.dumps(list(key)) if isinstance(key, (tuple, list)) else None


def sources(files: list[str]) -> list[tuple[Path, bool]]:
    """(filepath, single_file) pairs PicklePersistence takes, from the files named."""
    seen: dict[Path, bool] = {}
    for name in files:
        path = Path(name)
        if not path.is_file():
            raise SystemExit(f"error: {name}: no such file")
        base = None
        for suffix in SUFFIXES:
            if path.name.endswith(suffix) and len(path.name) > len(suffix):
                base = path.with_name(path.name[: -len(suffix)])
        if base is not None:
            seen[base] = False
        else:
            seen[path] = True
    return list(seen.items())


async def load(filepath: Path, single_file: bool) -> dict:
    from telegram.ext import PersistenceInput, PicklePersistence

    persistence = PicklePersistence(
        filepath=filepath,
        single_file=single_file,
        store_data=PersistenceInput(callback_data=True),
    )
    data = {
        "bot_data": await persistence.get_bot_data(),
        "chat_data": await persistence.get_chat_data(),
        "user_data": await persistence.get_user_data(),
        "callback_data": await persistence.get_callback_data(),
    }
    if not single_file:
        try:
            await persistence.get_conversations("")  # loads the conversations file
        except AttributeError:  # no such file: PTB leaves None behind
            pass
    data["conversations"] = persistence.conversations or {}
    return data


def to_document(loaded: dict, conv: Converter, origin: str) -> dict:
    doc: dict = {}
    doc["bot_data"] = conv.convert(loaded["bot_data"], "bot_data")
    for section in ("chat_data", "user_data"):
        out = {}
        for key, data in (loaded[section] or {}).items():
            path = f"{section}.{key}"
            if not isinstance(key, int) or isinstance(key, bool):
                conv.fail(path, key, "key is not an integer id")
                continue
            out[str(key)] = conv.convert(data, path)
        doc[section] = out
    conversations = {}
    for name, states in (loaded["conversations"] or {}).items():
        out = {}
        for key, state in states.items():
            path = f"conversations.{name}.{key!r}"
            text = conversation_key(key)
            if text is None or not all(isinstance(k, (int, str)) and not isinstance(k, bool) for k in key):
                conv.fail(path, key, "key is not a tuple of ids")
                continue
            out[text] = conv.convert(state, path)
        if out:
            conversations[str(name)] = out
    doc["conversations"] = conversations
    callback = loaded["callback_data"]
    if callback:
        keyboards, queries = callback
        doc["callback_data"] = [
            [
                [str(kid), float(when), conv.convert(buttons, f"callback_data.0.{kid}")]
                for kid, when, buttons in keyboards
            ],
            {str(q): str(k) for q, k in (queries or {}).items()},
        ]
    else:
        doc["callback_data"] = None
    return doc


def merge(into: dict, doc: dict, origin: str) -> None:
    for section, value in doc.items():
        if section == "bot_data":
            if into.get("bot_data") and value:
                raise SystemExit(f"error: {origin}: bot_data also comes from another file")
            if value or "bot_data" not in into:
                into["bot_data"] = value
        elif section == "callback_data":
            if value is not None:
                if into.get("callback_data"):
                    raise SystemExit(f"error: {origin}: callback_data also comes from another file")
                into["callback_data"] = value
            else:
                into.setdefault("callback_data", None)
        elif section == "conversations":
            target = into.setdefault("conversations", {})
            for name, states in value.items():
                target.setdefault(name, {}).update(states)
        else:
            target = into.setdefault(section, {})
            clash = set(target) & set(value)
            if clash:
                raise SystemExit(f"error: {origin}: {section} of {sorted(clash)} also in another file")
            target.update(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="PicklePersistence file(s)")
    parser.add_argument("--lossy", action="store_true", help="store repr() of values JSON cannot hold")
    parser.add_argument("--path", action="append", default=[], help="add DIR to the import path (your bot's modules)")
    parser.add_argument("--indent", type=int, default=None)
    args = parser.parse_args()
    for directory in args.path:
        sys.path.insert(0, directory)
    try:
        import telegram  # noqa: F401
    except ImportError:
        print("error: python-telegram-bot is not installed (npm run ptb-import makes a venv with it)", file=sys.stderr)
        return 2
    tolerate_missing_classes()
    conv = Converter(args.lossy)
    document: dict = {}
    for filepath, single_file in sources(args.files):
        try:
            loaded = asyncio.run(load(filepath, single_file))
        except TypeError as exc:
            cause = exc.__cause__
            hint = ""
            if isinstance(cause, (ModuleNotFoundError, AttributeError)):
                hint = " (the pickle names a class of your bot: pass --path <your bot's directory>)"
            print(f"error: {filepath}: {exc}{': ' + str(cause) if cause else ''}{hint}", file=sys.stderr)
            return 2
        merge(document, to_document(loaded, conv, str(filepath)), str(filepath))
    for warning in conv.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if conv.errors:
        for error in conv.errors:
            print(f"error: {error}", file=sys.stderr)
        print(f"{len(conv.errors)} value(s) have no JSON form; --lossy stores their repr()", file=sys.stderr)
        return 2
    for section in SECTIONS:
        document.setdefault(section, None if section == "callback_data" else {})
    json.dump(document, sys.stdout, indent=args.indent, ensure_ascii=False, allow_nan=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
