"""Subcommands of ``dt`` that packages add: ``dt zoo`` (dt-zoo), ``dt export``, a project's own tools.

A package declares an entry point in the group ``dt_engine.command`` naming an object with the
``Command`` shape; ``dt --help`` lists it and ``dt <name> ...`` runs it, with the same error
contract as the built-in commands (``ConfigError``/``InputError`` -> one line, exit 2)::

    [project.entry-points."dt_engine.command"]
    zoo = "dt_zoo.cli:COMMAND"

The module an entry point names is imported every time ``dt`` starts: keep its imports light and
import heavy code inside ``run``.
"""

from __future__ import annotations

import argparse
from typing import Protocol, runtime_checkable

from dt_config import load_entry_points

from .errors import InputError

__all__ = ["COMMAND_GROUP", "Command", "discover_commands"]

COMMAND_GROUP = "dt_engine.command"


@runtime_checkable
class Command(Protocol):
    """One ``dt`` subcommand: ``name`` (as typed), a one-line ``summary``, an ``example`` command line."""

    name: str
    summary: str
    example: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the command's options on its own subparser."""

    def run(self, args: argparse.Namespace) -> int:
        """Run with the parsed options; returns the exit code."""


def discover_commands(reserved: set[str]) -> dict[str, Command]:
    """The commands of the ``dt_engine.command`` entry points, by name.

    A command whose object is not a ``Command``, or whose name is taken (by a built-in command in
    ``reserved`` or another package), is refused with one line naming the entry point.
    """
    commands: dict[str, Command] = {}
    for where, command in load_entry_points(COMMAND_GROUP, InputError):
        if not isinstance(command, Command):
            needs = "name, summary, example, add_arguments, run"
            raise InputError(f"{where} is not a dt command (it needs {needs})")
        if command.name in reserved or command.name in commands:
            raise InputError(f"{where} defines command {command.name!r}, which already exists")
        commands[command.name] = command
    return commands
