"""The benchmark's figures, and the one Markdown table they are printed as."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.repeats import Repeats

Result = dict[str, Any]

TARGET_RATIO = 1.5
TARGET_ORDERS_PER_SECOND = 50_000
TARGET_INCREMENTAL_SHARE = 0.02
TARGET_PUSH_RATIO = 20
TARGET_RSS_MB = 300
TARGET_RSS_GROWTH_MB = 50


@dataclass
class Figures:
    """Everything one run measured (each value is what a measuring subprocess emitted)."""

    scale: dict[str, int] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)
    push: dict[str, Result] = field(default_factory=dict)
    baseline: dict[str, Result] = field(default_factory=dict)
    full: Result = field(default_factory=dict)
    reference: Result = field(default_factory=dict)
    # Rows 2 and 2c: every run per sink (bench/repeats.py), and the minimal sink's median run,
    # whose counts and shop-side figures stand for the row.
    incremental_runs: Repeats = field(default_factory=Repeats)
    child_runs: Repeats = field(default_factory=Repeats)
    incremental: Result = field(default_factory=dict)
    child: Result = field(default_factory=dict)  # incremental after child-only changes
    slice: Result = field(default_factory=dict)  # a cycle with nothing changed: one slice
    changed: int = 0
    child_changes: dict[str, Any] = field(default_factory=dict)  # bench.children.ChildChanges
    reconciled_changes: int = 0  # cursor-less child changes the slice resent (checked)
    small: dict[str, Any] = field(default_factory=dict)
    # --also-mysqlclient: {"sink": push's sink name, "push": Result, "full": Result}
    mysqlclient: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, str] = field(default_factory=dict)
    command: str = ""
    python: str = ""


def machine(server: str, load_before: tuple[float, ...],
            load_after: tuple[float, ...]) -> dict[str, str]:
    """The machine the figures come from."""
    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split("\n")[0].split()[1])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    return {
        "cpus": str(os.cpu_count()), "cpu": platform.processor() or platform.machine(),
        "memory": memory, "server": server, "system": platform.platform(),
        "load": f"{load_before[0]:.2f} before, {load_after[0]:.2f} after (1-min average)",
    }


def scanned(result: Result, resource: str | None = None) -> int:
    counts: dict[str, dict[str, int]] = result["counts"]
    if resource is not None:
        return counts.get(resource, {}).get("scanned", 0)
    return sum(c["scanned"] for c in counts.values())


def sent(result: Result) -> int:
    return sum(c["sent"] for c in result["counts"].values())


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _full_row(figures: Figures, full: Result | None = None, label: str = "1") -> str:
    full, ref = full or figures.full, figures.reference
    records = scanned(full)
    orders_rate = scanned(full, "orders") / full["resource_seconds"]["orders"]
    ref_records = sum(ref["counts"].values())
    ref_orders_rate = ref["counts"]["orders"] / ref["resource_seconds"]["orders"]
    ratio = full["seconds"] / ref["seconds"]
    verdicts = (f"{_verdict(ratio <= TARGET_RATIO)} (ratio), "
                f"{_verdict(orders_rate >= TARGET_ORDERS_PER_SECOND)} (orders/s)")
    return (
        f"| {label} | no-change full reconciliation, every resource | {_n(records)} records in "
        f"{full['seconds']:.1f} s: **{_n(records / full['seconds'])} records/s**; orders "
        f"{_n(orders_rate)}/s | bare reference: {_n(ref_records)} records in "
        f"{ref['seconds']:.1f} s: {_n(ref_records / ref['seconds'])} records/s; orders "
        f"{_n(ref_orders_rate)}/s | **{ratio:.2f}x** the reference's time | "
        f"<= {TARGET_RATIO}x and >= {_n(TARGET_ORDERS_PER_SECOND)} orders/s | {verdicts} |"
    )


def _repeated_time(runs: Repeats) -> str:
    """Rows 2 and 2c's time: the minimal sink's median (the verdict's), the sandbox's beside."""
    mine, cpu = runs.seconds("minimal"), runs.cpu("minimal")
    uneven = f" (**not comparable**: {runs.uneven})" if runs.uneven else ""
    return (f"**{mine.median:.2f} s** to the minimal sink (median of {runs.count()}, "
            f"{mine.low:.2f}-{mine.high:.2f} s; the cycle's CPU {cpu.median:.2f} s), "
            f"{runs.seconds('sandbox').text()} to the strict sandbox{uneven}")


def _repeated_share(runs: Repeats, full: Result) -> tuple[float, str]:
    """The minimal sink's median as a share of the full cycle, and the cell that says it."""
    share = runs.seconds("minimal").median / full["seconds"]
    sandbox = runs.seconds("sandbox").median / full["seconds"]
    return share, f"**{share:.1%}** of it (to the sandbox: {sandbox:.1%})"


def _incremental_row(figures: Figures) -> str:
    inc, full = figures.incremental, figures.full
    share, share_text = _repeated_share(figures.incremental_runs, full)
    return (
        f"| 2 | incremental cycle (cursor mode) after {_n(figures.changed)} orders changed | "
        f"{_repeated_time(figures.incremental_runs)}: {_n(scanned(inc))} records read, "
        f"{_n(sent(inc))} sent (and {inc.get('check_seconds', 0):.2f} s of mapping check "
        f"before it, as in every `cdc-sync sync` process) | "
        f"the full cycle: {full['seconds']:.1f} s | {share_text} | "
        f"<= {TARGET_INCREMENTAL_SHARE:.0%} | {_verdict(share <= TARGET_INCREMENTAL_SHARE)} |"
    )


_KIND_NAMES = {"lines": "order lines", "coupons": "coupons", "links": "category links",
               "tags": "customer tags"}
_KIND_RESOURCES = {"lines": "orders", "coupons": "orders", "links": "products",
                   "tags": "customers"}


def _child_row(figures: Figures) -> str:
    """Issue 12.7: an incremental cycle after changes in child tables only (bench/children)."""
    child, full, changes = figures.child, figures.full, figures.child_changes
    parents: dict[str, list[int]] = changes["parents"]
    total = sum(len(keys) for keys in parents.values())
    mix = ", ".join(f"{_n(len(keys))} {_KIND_NAMES[kind]}" for kind, keys in parents.items())
    followed = [k for k in parents if changes["followed"][k]]
    blind = [k for k in parents if not changes["followed"][k]]
    seen = "; ".join(
        f"{_n(len(parents[k]))} {_KIND_RESOURCES[k]} with new {_KIND_NAMES[k]}, seen by "
        f"their {changes['seen'][k]}" for k in followed)
    resent = sum(len(parents[k]) for k in followed)
    sent_by = ", ".join(f"{_n(c['sent'])} {name}" for name, c in child["counts"].items()
                        if c["sent"]) or "nothing"
    read_by = ", ".join(f"{_n(c['scanned'])} {name}" for name, c in child["counts"].items()
                        if c["scanned"]) or "nothing"
    share, share_text = _repeated_share(figures.child_runs, full)
    blind_text = (
        f"; the {_n(sum(len(parents[k]) for k in blind))} "
        f"{', '.join(_KIND_NAMES[k] for k in blind)} changes have no cursor the schema "
        f"allows: reconciliation only, not sent here ({_n(figures.reconciled_changes)} of "
        f"them came back with row 2b's slice, the rest within the window)" if blind else "")
    return (
        f"| 2c | incremental cycle (cursor mode) after {_n(total)} changes in child tables "
        f"only ({mix}) | {_repeated_time(figures.child_runs)}: records read {read_by}; "
        f"{sent_by} sent: the {_n(resent)} expected ({seen}; checked against state)"
        f"{blind_text} | the full cycle: {full['seconds']:.1f} s | {share_text} | "
        f"<= {TARGET_INCREMENTAL_SHARE:.0%} | {_verdict(share <= TARGET_INCREMENTAL_SHARE)} |"
    )


def _slice_row(figures: Figures) -> str:
    """Rolling reconciliation (issue 12.3): one cycle's slice beside the full read it replaces."""
    piece, full = figures.slice, figures.full
    if not piece:
        return ""
    read = sum(piece.get("reconciled", {}).values())
    share = piece["seconds"] / full["seconds"]
    resent = (f"; {_n(sent(piece))} sent: row 2c's cursor-less child changes in its key "
              f"ranges, checked" if figures.child else "; nothing changed")
    return (
        f"| 2b | one rolling-reconciliation slice (default 15-minute window, 60 s cycles) | "
        f"**{piece['seconds']:.2f} s**: {_n(read)} records read again "
        f"({read / max(scanned(full), 1):.1%} of them){resent} | the full cycle: "
        f"{full['seconds']:.1f} s | **{share:.1%}** of it | about 1/15 | - |"
    )


def _push_row(label: str, name: str, figures: Figures, push: Result | None = None) -> str:
    push, base = push or figures.push[name], figures.baseline[name]
    seconds = push["seconds"]
    rate = sent(push) / seconds
    base_rate = base["delivered"] / base["seconds"]
    ratio = rate / base_rate
    return (
        f"| {label} | first full push -> {_sink_name(name)} | {_n(sent(push))} records in "
        f"{seconds:.1f} s: **{_n(rate)} records/s**, {push['requests'] / seconds:,.1f} req/s, "
        f"{push['bytes'] / seconds / 1e6:.2f} MB/s | plugin-style (50 a request, one at a "
        f"time), {_n(base['delivered'])} records: {_n(base_rate)} records/s, "
        f"{base['requests'] / base['seconds']:,.1f} req/s | **{ratio:.1f}x** | "
        f">= {TARGET_PUSH_RATIO}x | {_verdict(ratio >= TARGET_PUSH_RATIO)} |"
    )


def _mysqlclient_rows(figures: Figures, labels: dict[str, str]) -> list[str]:
    """`--also-mysqlclient`: the push and the no-change cycle again through mysqlclient, the
    driver of bare `mysql://` URLs and of the Docker image, beside PyMySQL's rows."""
    again = figures.mysqlclient
    if not again:
        return []
    name = again["sink"]
    return [_full_row(figures, again["full"], "1 (mysqlclient)"),
            _push_row(f"3{labels[name]} (mysqlclient)", name, figures, again["push"])]


def _sink_name(name: str) -> str:
    if name == "sandbox":
        return "sandbox (strict: validates and stores every record)"
    if name == "minimal":
        return "minimal sink (reads the body, answers 200)"
    latency = name.split("+", 1)[1]
    return f"minimal sink + {latency} before each answer (a WAN round trip)"


def _rss_row(figures: Figures) -> str:
    small, big = figures.small, {"push": figures.push["sandbox"], "full": figures.full}
    small_orders = small.get("scale", figures.scale)["orders"]
    big_orders = figures.scale["orders"]
    peaks = {k: (small[k]["peak_rss_mb"], big[k]["peak_rss_mb"]) for k in ("push", "full")}
    worst_big = max(b for _, b in peaks.values())
    worst_growth = max(b - s for s, b in peaks.values())
    ok = worst_big <= TARGET_RSS_MB and worst_growth <= TARGET_RSS_GROWTH_MB
    return (
        f"| 4 | peak RSS of a cycle (first push / no-change full) | {_n(big_orders)} orders: "
        f"**{peaks['push'][1]:.0f} / {peaks['full'][1]:.0f} MB** | {_n(small_orders)} orders: "
        f"{peaks['push'][0]:.0f} / {peaks['full'][0]:.0f} MB | "
        f"{peaks['push'][1] - peaks['push'][0]:+.0f} / "
        f"{peaks['full'][1] - peaks['full'][0]:+.0f} MB | <= {TARGET_RSS_MB} MB, within "
        f"{TARGET_RSS_GROWTH_MB} MB of 100k | {_verdict(ok)} |"
    )


def _per_resource(figures: Figures) -> list[str]:
    lines = ["", "Seconds per resource (no-change full cycle / bare reference / first push "
             "to the sandbox):", ""]
    for name, seconds in figures.full["resource_seconds"].items():
        reference = figures.reference["resource_seconds"].get(name, 0.0)
        push = figures.push["sandbox"]["resource_seconds"].get(name, 0.0)
        lines.append(f"- {name}: {_n(scanned(figures.full, name))} records: {seconds:.2f} / "
                     f"{reference:.2f} / {push:.2f} s")
    return lines


def shop_side(result: Result) -> str:
    """What one cycle cost the shop's server (bench.shopstats), in one cell."""
    shop = result.get("shop") or {}
    if not shop:
        return "n/a"
    parts = [f"{_n(shop['rows_read'])} rows read"]
    if shop.get("rows_sent") is not None:
        parts.append(f"{_n(shop['rows_sent'])} rows / {shop['bytes_sent'] / 1e6:,.1f} MB sent")
    if shop.get("bytes_touched") is not None:
        parts.append(f"{shop['bytes_touched'] / 1e6:,.0f} MB of blocks touched")
    seconds, busy = shop.get("db_seconds"), shop.get("busy_seconds")
    if seconds is None:
        parts.append("server time n/a")
    elif busy is not None:  # MariaDB: Cpu_time, and Busy_time (statements' wall time)
        parts.append(f"server CPU {seconds:.1f} s (statements open {busy:.0f} s)")
    else:  # PostgreSQL: active_time
        parts.append(f"server active {seconds:.1f} s")
    return ", ".join(parts)


def _shop_side(figures: Figures) -> list[str]:
    again = figures.mysqlclient
    kinds = {"first push (sandbox)": figures.push.get("sandbox"),
             "no-change full cycle": figures.full,
             "no-change full cycle through mysqlclient": again.get("full"),
             "incremental cycle (the minimal sink's median run)": figures.incremental,
             "incremental cycle after child changes (the same)": figures.child,
             "rolling reconciliation slice": figures.slice}
    lines = ["", "What each cycle cost the shop's server (bench/shopstats.py):", ""]
    lines += [f"- {kind}: {shop_side(result)}" for kind, result in kinds.items() if result]
    return lines


def render(figures: Figures) -> str:
    """The one table, with the scale, the machine and the command above and below it."""
    scale, tables = figures.scale, figures.tables
    lines = [
        f"Shop: {_n(scale['customers'])} customers, {_n(scale['categories'])} categories, "
        f"{_n(scale['products'])} products, {_n(scale['orders'])} orders with "
        f"{_n(tables.get('order_lines', 0))} order lines ({figures.machine['server']}).",
        "",
        "| # | measure | cdc-sync | beside it | ratio | target | verdict |",
        "|---|---|---|---|---|---|---|",
        _full_row(figures),
        _incremental_row(figures),
        *([_slice_row(figures)] if figures.slice else []),
        *([_child_row(figures)] if figures.child else []),
    ]
    labels = dict(zip(figures.push, "abcdefgh", strict=False))
    lines += [_push_row(f"3{labels[name]}", name, figures) for name in figures.push]
    lines += _mysqlclient_rows(figures, labels)
    lines.append(_rss_row(figures))
    lines += _per_resource(figures)
    lines += _shop_side(figures)
    m = figures.machine
    lines += [
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['memory']} memory, "
        f"{m['server']}, Python {figures.python}, {m['system']}; load {m['load']}.",
        f"Command: `{figures.command}`",
    ]
    return "\n".join(lines)
