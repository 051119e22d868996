"""WORKDIR/config.json and the resume rule: a workdir holding results of one config is not silently continued
with another.

`save_config(workdir, config, resuming=...)` writes the run's config to WORKDIR/config.json. When the run
resumes (train.py: a committed checkpoint exists; a study: results.jsonl holds rows) and the saved config
differs from the new one, it raises `ConfigChangedError` listing every differing key as a dotted path,
`old -> new`, before anything compiles, unless `config.allow_config_change` is True; then it prints the
same list and keeps the saved file as config.<k>.json (k = 1, 2, ...: the first name not taken) before
writing the new one. Configs are compared as JSON (a tuple equals the list it is saved as); a key present
on one side only shows `<absent>` on the other; keys named `allow_config_change`, at any depth, are never a
difference. Both paths may be local or `gs://` (through `etils.epath`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import ml_collections
from etils import epath

CONFIG_FILE = "config.json"
ALLOW_KEY = "allow_config_change"
_ABSENT = object()


class ConfigChangedError(ValueError):
    """A resumed run's config differs from the config saved in its workdir."""


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{dotted path: value} of the non-mapping values of a nested mapping; empty mappings are leaves."""
    if not isinstance(tree, Mapping) or not tree:
        return {prefix: tree}
    out = {}
    for key, value in tree.items():
        if key != ALLOW_KEY:
            out.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def config_diff(old: Mapping, new: Mapping) -> list[tuple[str, Any, Any]]:
    """(dotted path, old value, new value) for every key whose value differs, sorted by path; a missing
    key's value is `<absent>`. Both configs are compared as their JSON forms."""
    old_leaves, new_leaves = _leaves(_as_json(old)), _leaves(_as_json(new))
    diff = []
    for path in sorted(old_leaves.keys() | new_leaves.keys()):
        a, b = old_leaves.get(path, _ABSENT), new_leaves.get(path, _ABSENT)
        if a != b:
            diff.append((path, a, b))
    return diff


def format_diff(diff: list[tuple[str, Any, Any]]) -> str:
    """One line per differing key: `  path: old -> new` (values as JSON)."""
    show = lambda v: "<absent>" if v is _ABSENT else json.dumps(v)
    return "\n".join(f"  {path}: {show(a)} -> {show(b)}" for path, a, b in diff)


def _as_json(config: Mapping) -> Any:
    if isinstance(config, ml_collections.ConfigDict):
        return json.loads(config.to_json_best_effort())
    return json.loads(json.dumps(config))


def _kept_name(directory: epath.Path) -> epath.Path:
    k = 1
    while (directory / f"config.{k}.json").exists():
        k += 1
    return directory / f"config.{k}.json"


def _write_text(path: epath.Path, text: str) -> None:
    """Replace `path` by `text` at once: one upload on an object store, a rename over it on a local disk."""
    if "://" in os.fspath(path):
        path.write_text(text)
    else:
        staged = path.with_name(path.name + ".tmp")
        staged.write_text(text)
        staged.replace(path)


def save_config(workdir: str | os.PathLike, config: ml_collections.ConfigDict, *, resuming: bool,
                writer: bool = True) -> None:
    """Write `config` to WORKDIR/config.json (only if `writer`), checking it first against the saved one when
    `resuming` (see the module docstring). Raises ConfigChangedError naming the differing keys."""
    directory = epath.Path(workdir)
    path = directory / CONFIG_FILE
    if resuming and path.exists():
        diff = config_diff(json.loads(path.read_text()), config)
        if diff and not config.get(ALLOW_KEY, False):
            raise ConfigChangedError(
                f"{path} holds the config of the run being resumed, and this run's config differs:\n"
                f"{format_diff(diff)}\n"
                f"Resuming with another config would mix two runs in one workdir. Use a new workdir, or pass "
                f"--config.{ALLOW_KEY}=True to resume anyway (for the training runs of a study: "
                f"--config.train.{ALLOW_KEY}=True); the saved config is then kept as config.<k>.json.")
        if diff and writer:
            kept = _kept_name(directory)
            path.rename(kept)
            print(f"resuming with a changed config ({ALLOW_KEY}=True):\n{format_diff(diff)}\n"
                  f"the previous config is kept as {kept}")
    if writer:
        directory.mkdir(parents=True, exist_ok=True)
        _write_text(path, config.to_json_best_effort(indent=2) + "\n")


__all__ = ["ALLOW_KEY", "CONFIG_FILE", "ConfigChangedError", "config_diff", "format_diff", "save_config"]
