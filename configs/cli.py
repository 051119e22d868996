"""Command-line conventions shared by sample.py and train.py (here beside the configs, not in the
diffserial package, whose import brings in JAX: --list and flag errors answer without it).

    app.run(main, flags_parser=functools.partial(cli.parse_flags, default_config=PATH))

- `parse_flags`: absl flag parsing in which a config that cannot be loaded (no such file, a
  ``--config.KEY=VALUE`` naming no field, a ``get_config`` that raises) is reported the way absl reports
  any bad flag, ``FATAL Flags parsing error: <one line>``, exit status 1, instead of a traceback.
- `list_configs`: the ``--list`` text: each config file with the summary line of its docstring.
"""

from __future__ import annotations

import ast
import os
import re
import sys
import textwrap
from collections.abc import Sequence

from absl import flags

CONFIG_FLAG = "config"
LIST_FLAG = "list"  # each script's --list: print its configs and exit
TRAIN_SUFFIX = "_train"  # configs/NAME_train.py are train.py configs; the others are sample.py studies


def _innermost_message(error: BaseException) -> str:
    """The text of a KeyError / AttributeError that ml_collections raised, unwrapped from the errors it
    wraps (AttributeError(KeyError("'key'\\nDid you mean ...?")))."""
    while error.args and isinstance(error.args[0], BaseException):
        error = error.args[0]
    return str(error.args[0]) if error.args else str(error)


def config_error_message(error: BaseException) -> str:
    """A one-line message for an error raised while loading or overriding the config flag."""
    if isinstance(error, (KeyError, AttributeError)):  # a --config.KEY=VALUE whose KEY is no field
        key, *hint = _innermost_message(error).splitlines()  # "'key'", then maybe "Did you mean ...?"
        return f"--{CONFIG_FLAG}: unknown config field {key}" + (f" ({' '.join(hint)})" if hint else "")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if isinstance(error, OSError):  # ml_collections lists its load attempts; the last line says why
        return f"--{CONFIG_FLAG}: {lines[-1]}"
    if len(lines) > 1:  # a flag error whose text is a get_config traceback: its first and last lines
        return f"{lines[0].rstrip(':')}: {lines[-1]}"
    return lines[0] if lines else type(error).__name__


def _with_default_config(argv: list[str], default_config: str | None) -> list[str]:
    """argv with --config=default_config after the program name when argv names no config, so that
    --config.KEY=VALUE overrides apply to the default (ml_collections reads them when --config parses)."""
    named = any(re.match(rf"^--?{CONFIG_FLAG}(=|$)", arg) for arg in argv[1:])
    return argv if named or default_config is None else [argv[0], f"--{CONFIG_FLAG}={default_config}", *argv[1:]]


def parse_flags(argv: list[str], default_config: str | None = None, required: Sequence[str] = ()) -> list[str]:
    """Parse argv into absl's FLAGS and return the remaining arguments; on a bad flag, a config that
    cannot be loaded or a `required` flag left unset (without --list), print ``FATAL Flags parsing error:
    <one line>`` and exit with status 1.

    The config flag must be defined with no default (`default_config` takes its place): ml_collections
    loads a default at definition time, before any error could be reported here.
    """
    try:
        remaining = flags.FLAGS(_with_default_config(argv, default_config))
        config = flags.FLAGS[CONFIG_FLAG].value
        if config is not None:
            config.keys()  # a config file that failed to load is a stand-in that raises its error on access
        missing = [f"--{name}" for name in required if flags.FLAGS[name].value is None]
        if not missing or flags.FLAGS[LIST_FLAG].value:
            return remaining
        verb = "is" if len(missing) == 1 else "are"
        message = f"{' and '.join(missing)} {verb} required (--{LIST_FLAG} shows the configs)"
    except (flags.Error, KeyError, AttributeError, OSError) as error:
        message = config_error_message(error)
    sys.stderr.write(f"FATAL Flags parsing error: {message}\n"  # absl's own words for a bad flag
                     "Pass --helpshort or --helpfull to see help on flags.\n")
    sys.exit(1)


def _module(path: str) -> ast.Module:
    """The syntax tree of a Python file, read without running it."""
    with open(path) as f:
        return ast.parse(f.read(), path)


def describe(path: str) -> str:
    """The first paragraph of a Python file's module docstring (its summary, however many lines it is
    wrapped over) on one line."""
    docstring = ast.get_docstring(_module(path)) or ""
    return " ".join(docstring.split("\n\n")[0].split())


def is_config_file(path: str) -> bool:
    """True for a Python file that defines get_config at top level (a config for --config)."""
    return any(isinstance(node, ast.FunctionDef) and node.name == "get_config"
               for node in _module(path).body)


def list_configs(directory: str, training: bool, width: int = 100) -> str:
    """The config files of `directory` for train.py (`training`: NAME_train.py) or sample.py (the others):
    the path to pass to --config and the summary of the file's docstring (`describe`), wrapped to `width`."""
    names = sorted(name for name in os.listdir(directory)
                   if name.endswith(".py") and name.removesuffix(".py").endswith(TRAIN_SUFFIX) == training
                   and is_config_file(os.path.join(directory, name)))
    paths = [os.path.join(os.path.basename(os.path.normpath(directory)), name) for name in names]
    indent = " " * (max(map(len, paths), default=0) + 4)
    kind = "Training" if training else "Study"
    lines = [f"{kind} configs (--config PATH, then --config.KEY=VALUE to override a field):"]
    lines += [textwrap.fill(describe(os.path.join(directory, name)) or "(no docstring)", width,
                            initial_indent=f"  {path}".ljust(len(indent)), subsequent_indent=indent)
              for path, name in zip(paths, names)]
    return "\n".join(lines)


__all__ = ["CONFIG_FLAG", "LIST_FLAG", "config_error_message", "describe", "is_config_file", "list_configs",
           "parse_flags"]
