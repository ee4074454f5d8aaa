"""The command line. Commands are thin: they resolve settings, call a use case, and render the result.

``base`` holds the group, the options every command takes and the exit codes; each other module is one
family of commands, registered on the group when the group first asks for one of them
(``base.COMMAND_MODULES``), so that a command imports only its own family.
"""

from dbmaint.cli.base import cli, console_main, main

__all__ = ["cli", "console_main", "main"]
