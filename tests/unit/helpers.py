"""Builders the unit tests share."""

from __future__ import annotations

from psycopg import sql

from dbmaint.model import Action


def vacuum_action(name: str) -> Action:
    """A planned VACUUM of public.<name>, as the vacuum pass records it."""
    return Action(
        object=f"public.{name}",
        statement=sql.SQL("VACUUM {}").format(sql.Identifier("public", name)),
        reason="dead rows",
        kind="vacuum",
    )
