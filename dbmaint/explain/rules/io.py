"""Rules on the blocks a node reads: from outside shared_buffers, and far more than its rows need."""

from __future__ import annotations

from dbmaint.explain import fmt
from dbmaint.explain.plan import Node, Plan, Problem
from dbmaint.explain.rules.base import NodeRule, register


@register
class PoorCacheHit(NodeRule):
    """>= 1,000 blocks read from outside shared_buffers (exclusive ``Shared Read Blocks``), >= 50% of those the
    node touched (with ``Shared Hit Blocks``): info; warning when its own ``I/O Read Time`` (PostgreSQL 16+:
    ``Shared I/O Read Time``; needs track_io_timing) is >= 40% of the execution time.

    Anchor: pgMustard "Cache Performance" (threshold unknown).
    """

    kind = "poor_cache_hit"
    order = 160
    min_read: float = 1000  # blocks read from outside shared_buffers
    read_ratio: float = 0.5  # of the blocks the node touched
    io_share: float = 0.4  # I/O read time, of the execution time

    def check(self, plan: Plan, node: Node) -> list[Problem]:
        read = int(plan.counters["shared_read"][node.id] or 0)
        hit = int(plan.counters["shared_hit"][node.id] or 0)
        if read < self.min_read or read / (read + hit) < self.read_ratio:
            return []
        io_read = plan.io_read[node.id]
        severity = "info"
        io_phrase = ""
        if io_read is not None and io_read > 0:
            io_phrase = f", waiting {fmt.ms(io_read)} for them"
            if plan.execution_ms and io_read / plan.execution_ms >= self.io_share:
                severity = "warning"
                io_phrase += f" ({fmt.pct(io_read / plan.execution_ms)} of the execution time)"
        detail = (
            f"{plan.label(node)} found only {hit:,} of {read + hit:,} blocks in shared_buffers and read "
            f"{fmt.blocks(read)} from the OS{io_phrase}."
        )
        table = plan.qualified(node)
        buffers = plan.settings.get("shared_buffers")
        size = f" ({buffers})" if buffers else ""
        fix = (
            "if runs are usually this slow, its working set does not stay in shared_buffers"
            f"{size}: raise shared_buffers (a restart) if memory allows, or read fewer blocks with a more selective "
            "index"
        )
        if table is not None:
            fix += f"; after a restart, SELECT pg_prewarm('{table}') (extension pg_prewarm) loads it back"
        return [Problem(self.kind, severity, node.id, detail, fix)]


@register
class ReadEfficiency(NodeRule):
    """A Seq Scan reading >= 1,000 blocks (exclusive ``Shared Hit Blocks`` + ``Shared Read Blocks``) and >= 10x
    the bytes per row its rows need (blocks x 8192 / rows examined, against ``Plan Width`` + 28 bytes of tuple
    overhead), and at least 1 kB per row: info; warning from 4 kB per row (fewer than 2 rows per page is bloat
    whatever the width).

    Anchor: pgMustard "Read Efficiency" (threshold unknown).
    """

    kind = "read_efficiency"
    order = 170
    node_types = ("Seq Scan",)
    min_blocks: float = 1000
    factor: float = 10.0  # bytes read per row / bytes a row takes
    bytes_info: float = 1024.0  # bytes read per row
    bytes_warning: float = 4096.0
    tuple_overhead: float = 28  # heap tuple header (23, aligned to 24) + line pointer (4)

    def check(self, plan: Plan, node: Node) -> list[Problem]:
        blocks = plan.blocks(node)
        if blocks < self.min_blocks:
            return []
        examined = (node.number("Actual Rows") + node.number("Rows Removed by Filter")) * (node.loops or 0)
        per_row = blocks * fmt.BLOCK_SIZE / max(examined, 1.0)
        width = node.number("Plan Width") + self.tuple_overhead
        if per_row < self.bytes_info or per_row < self.factor * width:
            return []
        severity = "warning" if per_row >= self.bytes_warning else "info"
        table = plan.qualified(node) or "the table"
        detail = (
            f"{plan.label(node)} read {fmt.blocks(blocks)} for {fmt.rows(examined)}, {fmt.byte_size(per_row)} per "
            f"row where a row takes about {fmt.byte_size(width)}: most of the table is empty space or dead rows."
        )
        fix = (
            f"VACUUM (VERBOSE) {table} to make the dead rows' space reusable; to give the space back, rewrite the "
            f"table: VACUUM FULL {table} (locks it ACCESS EXCLUSIVE while it runs) or pg_repack without the lock"
        )
        return [Problem(self.kind, severity, node.id, detail, fix)]
