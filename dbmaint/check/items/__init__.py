"""The checklist's items, one module per subject; importing this package registers every module in it.

Adding an item is one module here: a class registered with :func:`dbmaint.check.item.register` (its query in
``dbmaint/pg/queries`` if it reads one), with a unit test of its ``judge`` and a test on a real server that
makes it fail and pass. The modules are pure: what they judge is read by :mod:`dbmaint.check.checklist`.
"""

from __future__ import annotations

import importlib
import pkgutil

from dbmaint.check.item import REGISTERED, CheckItem

MODULES = tuple(sorted(info.name for info in pkgutil.iter_modules(__path__)))
for _module in MODULES:
    importlib.import_module(f"{__name__}.{_module}")
ITEMS: tuple[CheckItem, ...] = tuple(sorted(REGISTERED, key=lambda item: item.order))  # the checklist's order
