"""The exception hierarchy. Each ``str()`` is a finished, one-line user message.

The CLI turns these into a line on stderr and the exit code named by ``exit_code``;
nothing else in dbmaint prints errors.
"""

from __future__ import annotations


class DbmaintError(Exception):
    """Base class: a problem dbmaint understands and can explain in one line."""

    exit_code = 1


class ConfigError(DbmaintError):
    """The configuration (file, environment or options) is unusable."""

    exit_code = 2


class UsageError(DbmaintError):
    """The command line asks for something that cannot be done."""

    exit_code = 2


class ConnectError(DbmaintError):
    """PostgreSQL could not be reached or refused the login."""

    exit_code = 3


class StateStoreError(DbmaintError):
    """The history store cannot be opened or written (a malformed URL is a ``ConfigError`` instead).

    Exit 1, not 2: an unreachable or locked store may come back, so systemd should restart the service."""

    exit_code = 1


class StateStoreDataError(DbmaintError):
    """The state store refused a job's data (a constraint, a value): that run's failure, not the store's.

    The service goes on (the next run may bring other data); only a store it cannot use ends it."""

    exit_code = 1


class DatabaseError(DbmaintError):
    """A query dbmaint needed failed (privilege, missing extension, ...)."""

    exit_code = 1


class ClusterError(DbmaintError):
    """A throwaway local cluster (demo, tests) could not be set up."""

    exit_code = 1


class Interrupted(DbmaintError):
    """dbmaint was asked to stop (SIGTERM) while the work was going."""

    exit_code = 1


class ServiceFailed(DbmaintError):
    """The running service met a problem it cannot run on (its state store failed): exit 1, so that
    systemd restarts it (exit 2, a bad configuration at start, is left failed: restarting cannot fix it)."""

    exit_code = 1
