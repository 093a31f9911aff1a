"""Library errors name parameters (`init_time`); the CLI shows the flags (`--init-time`).

One message serves both audiences: the library marks a parameter in backticks
(svqcast.errors.PARAM_MARK) and the CLI's error printer rewrites it with the flag vocabulary
of svqcast/cli/options.py. These tests check both renderings of real errors, and that no
library message names a flag or a parameter the CLI cannot map.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from svqcast.cli.options import cli_message, flag_for
from svqcast.errors import PARAM_MARK, UsageError

PACKAGE = Path(__file__).resolve().parents[1] / "svqcast"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# Backticked words in messages that are not parameters (config keys, file contents).
NOT_PARAMETERS = {"extends"}


def _library_error(call) -> str:
    with pytest.raises(UsageError) as exc:
        call()
    return str(exc.value)


def _cases():
    from svqcast.config import parse_overrides
    from svqcast.data.downloads import parse_years
    from svqcast.sources.lexicon import parse_var_map

    return [
        (lambda: parse_var_map(["sst"]), "`var_map`", "--var-map"),
        (lambda: parse_years("2018:2010"), "`years`", "--years"),
        (lambda: parse_overrides(["train.lr"]), "`overrides`", "--set"),
    ]


@pytest.mark.parametrize("index", range(3))
def test_api_message_names_the_parameter_and_cli_shows_the_flag(index: int) -> None:
    call, param, flag = _cases()[index]
    message = _library_error(call)
    assert param in message and "--" not in message
    shown = cli_message(message)
    assert flag in shown and "`" not in shown
    assert shown == message.replace(param, flag)


def test_cli_prints_flags_end_to_end(tmp_path, capsys) -> None:
    from svqcast.cli import main

    with pytest.raises(SystemExit) as exc:
        main.run(["download", "weatherbench-s-t2m", "--years", "2018:2010", "--root", str(tmp_path), "--dry-run"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --years '2018:2010': the end year is before the start year"


def test_unknown_and_command_backticks_are_left_alone() -> None:
    message = "`extends` loops; run `svqcast prepare NAME --force` or give `steps`"
    assert cli_message(message) == "`extends` loops; run `svqcast prepare NAME --force` or give --steps"
    assert flag_for("overrides") == "--set" and flag_for("from_path") == "--from"
    assert flag_for("no_such_parameter") is None


def _error_messages() -> list[tuple[str, int, str]]:
    """(file, line, text of the string constants) of every *Error(...) call outside svqcast/cli."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "cli" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name.endswith("Error"):
                text = "".join(c.value for c in ast.walk(node) if isinstance(c, ast.Constant)
                               and isinstance(c.value, str))
                found.append((str(path.relative_to(PACKAGE)), node.lineno, text))
    return found


def test_library_messages_name_parameters_not_flags() -> None:
    """A flag may appear only inside a backticked `svqcast ...` command suggestion."""
    offenders = []
    for where, line, text in _error_messages():
        outside = "".join(part for i, part in enumerate(text.split("`")) if i % 2 == 0)
        if FLAG.search(outside):
            offenders.append(f"{where}:{line}: {text}")
    assert not offenders, "\n".join(offenders)


def test_every_marked_parameter_has_a_flag() -> None:
    unknown = [f"{where}:{line}: `{name}`" for where, line, text in _error_messages()
               for name in PARAM_MARK.findall(text) if name not in NOT_PARAMETERS and flag_for(name) is None]
    assert not unknown, "\n".join(unknown)


def test_commands_take_their_options_from_the_vocabulary() -> None:
    """Every option and argument is declared in cli/options.py, and every flag a command
    accepts is one `flag_for` knows, so the error printer can name it."""
    import click
    import typer

    from svqcast.cli import options
    from svqcast.cli.main import app

    inline = [f"{path.name}:{n}" for path in sorted((PACKAGE / "cli").glob("*.py")) if path.name != "options.py"
              for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
              if "typer.Option(" in line or "typer.Argument(" in line]
    assert not inline, inline

    def flags(command: click.Command) -> set[str]:
        found = {o for p in command.params if isinstance(p, click.Option) for o in p.opts if o.startswith("--")}
        for sub in getattr(command, "commands", {}).values():
            found |= flags(sub)
        return found

    completion = {"--install-completion", "--show-completion", "--help"}
    assert flags(typer.main.get_command(app)) - completion <= options._FLAGS
