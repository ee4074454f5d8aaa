"""The command line. Commands are thin: they resolve settings, call a use case, and render the result.

``base`` holds the group, the options every command takes and the exit codes; each other module is one
family of commands, registered on the group when imported here.
"""

from dbmaint.cli import advisor, capture, demo, explain, maintenance, service
from dbmaint.cli.base import cli, main

__all__ = ["advisor", "capture", "cli", "demo", "explain", "main", "maintenance", "service"]
