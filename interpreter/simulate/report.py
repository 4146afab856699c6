"""The simulate report: one self-contained HTML file with charts and tables.

``render_report(result, names) -> str`` turns a ``SimulationResult`` into
HTML that works offline: the charts are inline SVG drawn by matplotlib
(Agg backend, text kept as text), the style is an inline ``<style>``, and
nothing is fetched from anywhere — no scripts, web fonts, images or links
to other sites.

Charts, each with a title, axis labels with units and a legend:

* points earned / spent / expired / reversed per month, and the outstanding
  liability (points held, pending included) at each month's end;
* rewards granted per month by reward, and their cost per month;
* customers per tier at each month's end (stacked);
* purchases per month and the average basket (a line at ``--effect-from``);
* with a baseline: old vs new side by side, and the distribution of the
  per-customer change.

Tables: the summary (new, baseline, change), the program-effect measures,
the monthly figures, and the first rejected events.
"""

from __future__ import annotations

import html
import io
import os
import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Sequence

from poletti.dsl import classes
from poletti.interpreter.simulate.summary import ActivityMonth, Month, SimulationResult, day_start, delta_pct

# Colours that stay apart for colour-blind readers (Okabe–Ito).
BLUE, ORANGE, GREEN, RED, PURPLE, SKY, YELLOW, GREY = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#999999")
SERIES = {"earned": GREEN, "spent": BLUE, "expired": RED, "reversed": PURPLE}
PALETTE = (BLUE, ORANGE, GREEN, PURPLE, SKY, RED, YELLOW, "#000000")


@classes.frozen
class Names:
    """What the report calls its inputs."""

    rules: str = "rules"
    history: str = "history"
    baseline: str | None = None
    generated: str = ""


@classes.frozen
class Chart:
    name: str
    title: str
    svg: str


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _style() -> dict[str, Any]:
    return {
        "svg.fonttype": "none",  # text stays text: smaller, sharp, searchable
        "svg.hashsalt": "poletti",  # ids from a fixed salt, not a random one: the same input, the same bytes
        "font.family": "sans-serif",
        "font.size": 9.5,
        "axes.titlesize": 11,
        "axes.titleweight": "bold",
        "axes.titlelocation": "left",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "axes.grid.axis": "y",
        "grid.color": "#e4e4e4",
        "grid.linewidth": 0.8,
        "legend.frameon": False,
        "legend.fontsize": 8.5,
        "figure.dpi": 100,
    }


# ------------------------------------------------------------------ helpers


def _mid(start: date) -> datetime:
    return datetime(start.year, start.month, 15)


def _following(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


class _Axis:
    """Where months sit on a chart's x axis.

    Dates, when the series' months follow one another. When the series
    leaves out a long quiet stretch (``summary.shown_months``), each month
    gets one unit of room instead — its place in the series — so a gap of
    years takes no room (and costs no work); a dotted line marks each gap.
    """

    def __init__(self, months: Sequence[date]) -> None:
        self.months = list(months)
        self.gapped = any(_following(a) != b for a, b in zip(self.months, self.months[1:]))
        self.place = {month: i for i, month in enumerate(self.months)}

    def mid(self, month: date) -> Any:
        return self.place[month] if self.gapped else _mid(month)

    def days(self, count: float) -> Any:
        """A width of ``count`` days (a bar's), in the axis' units."""
        return count / 30.44 if self.gapped else count

    def shifted(self, x: Any, days: float) -> Any:
        return x + days / 30.44 if self.gapped else x + timedelta(days=days)

    def span(self, month: date) -> tuple[Any, Any]:
        if self.gapped:
            place = self.place.get(month, len(self.months) - 1)
            return place - 0.5, place + 0.5
        end = _following(month)
        return datetime(month.year, month.month, 1), datetime(end.year, end.month, 1)

    def at(self, when: datetime) -> Any:
        """An instant (naive, local) on the axis; None when its month is not shown."""
        if not self.gapped:
            return when
        month = date(when.year, when.month, 1)
        if month not in self.place:
            return None
        start, end = datetime(month.year, month.month, 1), datetime(_following(month).year, _following(month).month, 1)
        return self.place[month] - 0.5 + (when - start) / (end - start)

    def finish(self, ax: Any) -> None:
        if not self.gapped:
            _month_axis(ax, self.months)
            return
        count = len(self.months)
        step = max(1, -(-count // 8))
        ticks = list(range(0, count, step))
        ax.set_xticks(ticks, [self.months[i].strftime("%Y-%m") for i in ticks])
        ax.set_xlim(-0.6, count - 0.4)
        for i in range(1, count):
            if _following(self.months[i - 1]) != self.months[i]:
                for panel in ax.get_shared_x_axes().get_siblings(ax):
                    panel.axvline(i - 0.5, color="#888888", linestyle=":", linewidth=1)


def _month_axis(ax: Any, months: Sequence[date]) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=9)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if months:
        first = months[0]
        last = months[-1]
        end = date(last.year + last.month // 12, last.month % 12 + 1, 1)
        ax.set_xlim(datetime(first.year, first.month, 1) - timedelta(days=3), datetime(end.year, end.month, end.day)
                    + timedelta(days=3))


def _compact(value: float, _pos: Any = None) -> str:
    """Tick labels that stay short: 950, 1.5k, 12.5k, 3.2M."""
    size = abs(value)
    if size >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if size >= 1_000:
        return f"{value / 1_000:.3g}k"
    if size >= 1 or value == 0:
        return f"{value:,.0f}"
    return f"{value:g}"


def _thousands(ax: Any, axis: str = "y", integer: bool = True) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(MaxNLocator(nbins=5 if axis == "x" else 6, integer=integer))
    target.set_major_formatter(FuncFormatter(_compact))
    ax.set_axisbelow(True)


def _mark_partial(ax: Any, partial: tuple[datetime, datetime] | None, label: bool = False,
                  axis: _Axis | None = None) -> None:
    """Shade the last month when the simulation ends inside it: its flows cover only part of a month."""
    if partial is None:
        return
    start, until = partial
    left, right = (axis or _Axis([])).span(date(start.year, start.month, 1))
    ax.axvspan(left, right, color="#ececec", zorder=0, linewidth=0,
               label=f"partial month (to {until.day} {until:%b})" if label else None)


def _svg(fig: Any, name: str, title: str, png_dir: str | None) -> str:
    plt = _pyplot()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    if png_dir is not None:
        fig.savefig(os.path.join(png_dir, f"{name}.png"), format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE (they name outside URLs)
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    # Inline SVG in HTML needs no namespace declarations; without them the file names no outside address at all.
    text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text)
    # Several SVGs share one HTML document: give each its own ids.
    text = re.sub(r'id="([^"]+)"', rf'id="{name}-\1"', text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{name}-\1)", text)
    text = re.sub(r'href="#([^"]+)"', rf'href="#{name}-\1"', text)
    # The chart takes the page's width (CSS): the root keeps its viewBox, not its fixed size in points.
    root = text[:text.index(">")]
    text = re.sub(r'\s(width|height)="[^"]*"', "", root) + text[len(root):]
    text = re.sub(r'<svg ', f'<svg role="img" aria-labelledby="{name}-title" ', text, count=1)
    text = text.replace(">", f"><title id=\"{name}-title\">{html.escape(title)}</title>", 1)
    return text.strip()


# ------------------------------------------------------------------- charts


def _plot_text(text: str) -> str:
    """User text (a reward's label) as matplotlib shows it literally: a "$" would start mathematics."""
    return text.replace("$", r"\$")


def _style_legend(ax: Any, with_baseline: bool) -> None:
    """The colour legend of the series, plus one entry each for the line styles of new and baseline rules."""
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    if with_baseline:
        handles += [Line2D([], [], color="#555555", linewidth=1.8), Line2D([], [], color="#555555", linestyle="--",
                                                                             linewidth=1.2)]
        labels += ["new rules", "baseline rules"]
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def points_chart(new: Sequence[Month], old: Sequence[Month] | None, png_dir: str | None = None,
                 partial: tuple[datetime, datetime] | None = None) -> Chart:
    plt = _pyplot()
    months = [m.start for m in new]
    axis = _Axis(months)
    x = [axis.mid(m) for m in months]
    with plt.rc_context(_style()):
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(9.5, 6.4), sharex=True,
                                          gridspec_kw={"height_ratios": [1.25, 1], "hspace": 0.32})
        for key, colour in SERIES.items():
            values = [getattr(m, key) for m in new]
            if key == "reversed" and not any(values) and not (old and any(m.reversed for m in old)):
                continue
            top.plot(x, values, color=colour, marker="o", markersize=3.5, linewidth=1.8, label=f"{key}")
            if old is not None:
                top.plot([axis.mid(m.start) for m in old], [getattr(m, key) for m in old], color=colour,
                         linestyle="--", linewidth=1.2, alpha=0.8)
        top.set_title("Points earned, spent, expired and reversed per month")
        top.set_ylabel("points per month")
        top.set_ylim(bottom=0)
        _thousands(top)
        _mark_partial(top, partial, label=True, axis=axis)
        _mark_partial(bottom, partial, axis=axis)
        _style_legend(top, old is not None)
        bottom.fill_between(x, [m.outstanding for m in new], color=ORANGE, alpha=0.25, linewidth=0)
        bottom.plot(x, [m.outstanding for m in new], color=ORANGE, marker="o", markersize=3.5, linewidth=1.8,
                    label="outstanding")
        if old is not None:
            bottom.plot([axis.mid(m.start) for m in old], [m.outstanding for m in old], color="#8a5a00",
                        linestyle="--", linewidth=1.2, label="outstanding (baseline rules)")
        bottom.set_title("Outstanding points (liability) at each month's end, pending included")
        bottom.set_ylabel("points held")
        _thousands(bottom)
        bottom.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        axis.finish(bottom)
        return Chart("points", "Points over time", _svg(fig, "points", "Points over time", png_dir))


def rewards_chart(new: Sequence[Month], old: Sequence[Month] | None, currency: str,
                  png_dir: str | None = None, partial: tuple[datetime, datetime] | None = None,
                  labels: dict[str, str] | None = None) -> Chart:
    plt = _pyplot()
    months = [m.start for m in new]
    names = list(new[0].rewards) if new else []
    for month in list(new) + list(old or []):
        names.extend(r for r in month.rewards if r not in names)
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    axis = _Axis(months)
    offset = 6 if old is not None else 0
    width = axis.days(11 if old is not None else 22)
    with plt.rc_context(_style()):
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(9.5, 6.4), sharex=True,
                                          gridspec_kw={"height_ratios": [1.25, 1], "hspace": 0.32})
        series: list[tuple[str, Sequence[Month], float, str | None]] = [("new", new, 1.0, None)]
        if old is not None:
            series.insert(0, ("baseline", old, 0.45, "///"))
        for label, data, alpha, hatch in series:
            shift = -offset if label == "baseline" else offset
            xs = [axis.shifted(axis.mid(m.start), shift) for m in data]
            base = [0] * len(data)
            for name in names:
                counts = [m.rewards.get(name, 0) for m in data]
                if not any(counts):
                    continue
                shown = _plot_text((labels or {}).get(name, name))
                legend = shown if label == "new" else f"{shown} (baseline)"
                top.bar(xs, counts, width=width, bottom=base, color=colours[name], alpha=alpha, hatch=hatch,
                        edgecolor="white" if hatch is None else colours[name], linewidth=0.5, label=legend)
                base = [b + c for b, c in zip(base, counts)]
            bottom.bar(xs, [float(m.cost) for m in data], width=width, color=BLUE if label == "new" else GREY,
                       alpha=1.0 if label == "new" else 0.7, label=f"cost ({label} rules)")
        if not any(sum(m.rewards.values()) for m in new) and not (old and any(sum(m.rewards.values()) for m in old)):
            top.text(0.5, 0.5, "no rewards were granted", transform=top.transAxes, ha="center", va="center",
                     color="#666666")
        _mark_partial(top, partial, label=True, axis=axis)
        _mark_partial(bottom, partial, axis=axis)
        top.set_title("Rewards granted per month")
        top.set_ylabel("rewards granted")
        _thousands(top)
        handles, _labels = top.get_legend_handles_labels()
        if handles:
            top.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        bottom.set_title(f"Cost of the rewards granted per month ({currency})")
        bottom.set_ylabel(f"cost ({currency})")
        _thousands(bottom, integer=False)
        bottom.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        axis.finish(bottom)
        return Chart("rewards", "Rewards and their cost", _svg(fig, "rewards", "Rewards and their cost", png_dir))


TIER_COLOURS = {"bronze": "#B07A45", "silver": "#8E9AA6", "gold": "#E0A800", "platinum": "#5B6770",
                "diamond": "#56B4E9", "vip": PURPLE}


def _tier_colours(names: Sequence[str]) -> dict[str, str]:
    """One colour per tier name, the same in every panel (gold looks gold, silver silver)."""
    colours: dict[str, str] = {}
    spare = iter(c for c in PALETTE if c not in TIER_COLOURS.values())
    for name in names:
        colours[name] = TIER_COLOURS.get(name.lower()) or next(spare, GREY)
    return colours


def _tier_panel(ax: Any, data: Sequence[Month], tiers: Sequence[str], colours: dict[str, str], title: str,
                partial: tuple[datetime, datetime] | None) -> None:
    axis = _Axis([m.start for m in data])
    xs = [axis.mid(m.start) for m in data]
    present = [t for t in tiers if t in (data[0].tiers if data else {})]
    if present:
        ax.stackplot(xs, [[m.tiers.get(t, 0) for m in data] for t in present], colors=[colours[t] for t in present],
                     labels=present, alpha=0.9, linewidth=0)
        handles, names = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], names[::-1], loc="upper left", fontsize=8)
    else:
        ax.text(0.5, 0.5, "these rules have no tiers", transform=ax.transAxes, ha="center", va="center",
                color="#666666")
    _mark_partial(ax, partial, axis=axis)
    ax.set_title(title)
    untiered = data[-1].tiers.get("none", 0) if data else 0
    ax.set_xlabel(f"customers without a tier (not drawn): {untiered:,} at the end", fontsize=8, color="#444444")
    ax.set_ylabel("customers at month end")
    _thousands(ax)
    axis.finish(ax)


def tiers_chart(new: Sequence[Month], old: Sequence[Month] | None, png_dir: str | None = None,
                partial: tuple[datetime, datetime] | None = None) -> Chart:
    plt = _pyplot()
    tiers = [name for name in (new[0].tiers if new else {}) if name != "none"]
    if old:
        tiers += [name for name in old[0].tiers if name != "none" and name not in tiers]
    colours = _tier_colours(tiers)
    with plt.rc_context(_style()):
        if old is None:
            fig, ax = plt.subplots(figsize=(9.5, 3.6))
            _tier_panel(ax, new, tiers, colours, "Customers per tier at month end", partial)
        else:
            fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.9), sharey=True)
            _tier_panel(left, old, tiers, colours, "Customers per tier: baseline rules", partial)
            _tier_panel(right, new, tiers, colours, "Customers per tier: new rules", partial)
            right.set_ylabel("")
        return Chart("tiers", "Tier sizes over time", _svg(fig, "tiers", "Tier sizes over time", png_dir))


def segments_chart(new: Sequence[Month], old: Sequence[Month] | None, png_dir: str | None = None,
                   partial: tuple[datetime, datetime] | None = None) -> Chart:
    """Customers in each segment at each month's end: a line per segment, the baseline's dashed.

    Lines, not stacked areas: a customer may be in several segments (or in none), so sizes do not add up.
    """
    plt = _pyplot()
    names = list(new[0].segments) if new else []
    if old:
        names += [name for name in old[0].segments if name not in names]
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    axis = _Axis([m.start for m in new])
    with plt.rc_context(_style()):
        fig, ax = plt.subplots(figsize=(9.5, 3.6))
        for name in names:
            if new and name in new[0].segments:
                ax.plot([axis.mid(m.start) for m in new], [m.segments.get(name, 0) for m in new],
                        color=colours[name], marker="o", markersize=3.5, linewidth=1.8, label=name)
            if old and name in old[0].segments:
                ax.plot([axis.mid(m.start) for m in old], [m.segments.get(name, 0) for m in old],
                        color=colours[name], linestyle="--", linewidth=1.2, alpha=0.8,
                        label=None if new and name in new[0].segments else f"{name} (baseline rules only)")
        _mark_partial(ax, partial, label=True, axis=axis)
        ax.set_title("Customers per segment at month end")
        ax.set_ylabel("customers in the segment")
        ax.set_ylim(bottom=0)
        _thousands(ax)
        _style_legend(ax, bool(old and old[0].segments))  # the line styles matter only when both have segments
        axis.finish(ax)
        return Chart("segments", "Segment sizes over time", _svg(fig, "segments", "Segment sizes over time", png_dir))


def groups_chart(groups: dict[str, Any], png_dir: str | None = None) -> Chart:
    """Customers who gain (right, green) and who lose (left, red) under the new rules, per tier and segment."""
    plt = _pyplot()
    rows = [(f"tier {name}", figures) for name, figures in groups.get("tiers", {}).items()]
    rows += [(f"segment {name}", figures) for name, figures in groups.get("segments", {}).items()]
    with plt.rc_context(_style()):
        fig, ax = plt.subplots(figsize=(9.5, max(1.8, 0.42 * len(rows) + 1.0)))
        ys = list(range(len(rows)))
        ax.barh(ys, [f["gain"] for _, f in rows], height=0.6, color=GREEN, label="customers who gain")
        ax.barh(ys, [-f["lose"] for _, f in rows], height=0.6, color=RED, label="customers who lose")
        ax.set_yticks(ys, [name for name, _ in rows])
        ax.invert_yaxis()
        ax.axvline(0, color="#444444", linewidth=0.8)
        ax.grid(axis="x", color="#e4e4e4")
        ax.grid(axis="y", visible=False)
        _thousands(ax, "x")
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _p: _compact(abs(v))))
        ax.set_xlabel("customers (losing to the left, gaining to the right)")
        ax.set_title("Who gains and who loses, by tier and by segment at the end (new rules)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return Chart("groups", "Gains and losses by group", _svg(fig, "groups", "Gains and losses by group", png_dir))


def activity_chart(months: Sequence[ActivityMonth], currency: str, effect_from: datetime | None,
                   png_dir: str | None = None, partial: tuple[datetime, datetime] | None = None) -> Chart:
    plt = _pyplot()
    axis = _Axis([m.start for m in months])
    xs = [axis.mid(m.start) for m in months]
    with plt.rc_context(_style()):
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(9.5, 5.6), sharex=True,
                                          gridspec_kw={"height_ratios": [1.2, 1], "hspace": 0.32})
        top.bar(xs, [m.purchases for m in months], width=axis.days(22), color=SKY, label="purchases")
        top.plot(xs, [m.purchasers for m in months], color=BLUE, marker="o", markersize=3.5, linewidth=1.8,
                 label="customers who purchased")
        _mark_partial(top, partial, label=True, axis=axis)
        top.set_title("Purchases and purchasing customers per month")
        top.set_ylabel("per month")
        _thousands(top)
        baskets = [(x, float(m.spend / m.purchases)) for x, m in zip(xs, months) if m.purchases]
        bottom.plot([b[0] for b in baskets], [b[1] for b in baskets], color=GREEN, marker="o", markersize=3.5,
                    linewidth=1.8, label="average basket")
        _mark_partial(bottom, partial, axis=axis)
        bottom.set_title(f"Average basket per month ({currency})")
        bottom.set_ylabel(f"{currency} per purchase")
        bottom.set_ylim(bottom=0)
        shown = [m.start for m in months]
        if effect_from is not None and shown and datetime(shown[0].year, shown[0].month, 1) <= effect_from \
                <= datetime(shown[-1].year + shown[-1].month // 12, shown[-1].month % 12 + 1, 1):
            pivot = axis.at(effect_from)
            for ax in (top, bottom) if pivot is not None else ():
                ax.axvline(pivot, color=RED, linestyle="--", linewidth=1.3, label="effect from")
        for ax in (top, bottom):
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        axis.finish(bottom)
        return Chart("activity", "Purchases and average basket", _svg(fig, "activity", "Purchases and average basket", png_dir))


def comparison_chart(summary: dict[str, Any], png_dir: str | None = None, labels: dict[str, str] | None = None) -> Chart:
    """Old vs new, side by side: points, rewards granted (by label), customers per tier."""
    plt = _pyplot()
    old = summary["baseline"]
    panels = [
        ("Points", "points", list(summary["points"])),
        ("Rewards granted", "rewards", _union(summary["rewards"], old["rewards"])),
        ("Customers per tier", "tiers", _union(summary["tiers"], old["tiers"])),
    ]
    with plt.rc_context(_style()):
        heights = [max(1.6, 0.42 * len(keys) + 0.9) for _, _, keys in panels]
        fig, axes = plt.subplots(1, 3, figsize=(11.5, max(heights)))
        for ax, (title, key, names) in zip(axes, panels):
            ys = list(range(len(names)))
            new_values = [summary[key].get(n, 0) for n in names]
            old_values = [old[key].get(n, 0) for n in names]
            ax.barh([y + 0.2 for y in ys], old_values, height=0.38, color=GREY, label="baseline rules")
            ax.barh([y - 0.2 for y in ys], new_values, height=0.38, color=BLUE, label="new rules")
            ax.set_yticks(ys, [_plot_text((labels or {}).get(n, n)) if key == "rewards" else n for n in names])
            ax.invert_yaxis()
            ax.set_title(title)
            ax.grid(axis="x", color="#e4e4e4")
            ax.grid(axis="y", visible=False)
            ax.set_axisbelow(True)
            _thousands(ax, "x")
            ax.set_xlabel({"points": "points", "rewards": "times granted", "tiers": "customers"}[key])
        axes[0].legend(loc="lower right", fontsize=8)
        fig.suptitle("Old vs new rules", x=0.01, ha="left", fontweight="bold", fontsize=12)
        fig.tight_layout()
        return Chart("comparison", "Old vs new rules", _svg(fig, "comparison", "Old vs new rules", png_dir))


def _union(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return list(a) + [k for k in b if k not in a]


def _zero_aligned_edges(values: Any, whole: bool) -> Any:
    """Histogram bin edges with 0 as an edge, so no bar mixes gains with losses; about 30 bins at most."""
    import numpy as np

    low, high = float(values.min()), float(values.max())
    width = float(np.diff(np.histogram_bin_edges(values, bins="auto"))[0]) if high > low else 1.0
    width = max(width, (high - low) / 30, 1.0 if whole else 0.01)
    if whole:
        width = float(np.ceil(width))
    first = np.floor(min(low, 0.0) / width) * width
    last = np.ceil(max(high, 0.0) / width) * width
    if last <= high:
        last += width
    return np.arange(first, last + width / 2, width)


def delta_chart(deltas: dict[str, list[float]], currency: str, png_dir: str | None = None) -> Chart:
    """Histograms of the per-customer change; customers with no change are counted, not drawn."""
    import numpy as np

    plt = _pyplot()
    panels = [("lifetime_points", "Change in points earned", "points (new − baseline)"),
              ("held_points", "Change in points held at the end", "points (new − baseline)"),
              ("reward_value", "Change in reward value", f"{currency} (new − baseline)")]
    with plt.rc_context(_style()):
        fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.6))
        for ax, (key, title, xlabel) in zip(axes, panels):
            values = np.asarray(deltas.get(key, []), dtype=float)
            changed = values[values != 0]
            same = int((values == 0).sum())
            beyond = ""
            if changed.size:
                shown = changed
                if changed.size >= 50:
                    # A long tail would squash everyone else into one bar: the outer 1 % on each side are
                    # counted in the end bars instead.
                    low, high = np.percentile(changed, [1, 99])
                    low, high = min(low, 0.0), max(high, 0.0)
                    outside = int(((changed < low) | (changed > high)).sum())
                    if outside and high > low:
                        shown = np.clip(changed, low, high)
                        beyond = f"\n{outside:,} outside the range drawn, counted in the end bars"
                edges = _zero_aligned_edges(shown, whole=key != "reward_value")
                counts, edges = np.histogram(shown, bins=edges)
                colours = [GREEN if (lo + hi) / 2 > 0 else RED for lo, hi in zip(edges[:-1], edges[1:])]
                ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=colours, edgecolor="white",
                       linewidth=0.4)
                ax.axvline(0, color="#444444", linewidth=0.8)
            else:
                ax.text(0.5, 0.5, "no customer changed", transform=ax.transAxes, ha="center", va="center",
                        color="#666666")
            gains, losses = int((changed > 0).sum()), int((changed < 0).sum())
            ax.set_title(title)
            ax.set_xlabel(f"{xlabel}\n{gains:,} up · {losses:,} down · {same:,} same (not drawn){beyond}")
            ax.set_ylabel("customers")
            _thousands(ax)
            if key == "reward_value":
                _thousands(ax, "x", integer=False)
        fig.suptitle("Who gains and who loses: change per customer", x=0.01, ha="left", fontweight="bold",
                     fontsize=12)
        fig.tight_layout()
        return Chart("deltas", "Per-customer change", _svg(fig, "deltas", "Per-customer change", png_dir))


# ------------------------------------------------------------------- tables


def _num(value: Any) -> str:
    """A figure for people: thousands separated, money (a decimal string) with two places."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, str) and _MONEY.fullmatch(value):
        return f"{Decimal(value):,.2f}"
    if isinstance(value, list):  # names, such as the rewards of unknown cost
        return ", ".join(str(v) for v in value) or "–"
    return str(value)


_MONEY = re.compile(r"-?\d+\.\d\d")


def _signed(value: Any) -> str:
    """A change: with its sign, 0 without one."""
    if isinstance(value, str):
        number = Decimal(value)
        places = max(2, -number.as_tuple().exponent)  # type: ignore[operator]  # a point value may have more
        return f"{number:+,.{places}f}" if number else "0.00"
    if isinstance(value, int):
        return f"{value:+,}" if value else "0"
    return _num(value)


# Which way each figure is good news, so a change is coloured by what it means, not by its sign: "up" when a
# rise is good, "down" when a fall is. The view is the program owner's: what the program costs and the points
# it owes (the liability) should not grow; members getting more — points, rewards, customers who gain — is
# what a program is for. Points expiring are points members lose. A figure not listed (events, customers,
# tiers, segments, points spent or reversed, the point value, sales of a replayed history) is neutral: its
# change is shown without a colour. A key names a figure ("points.earned") or every figure under it
# ("rewards" for each reward).
GOOD_DIRECTION: dict[str, str] = {
    "points.earned": "up",
    "points.expired": "down",
    "points.outstanding": "down",
    "liability.outstanding": "down",
    "liability.expired": "down",
    "rewards": "up",
    "cost": "down",
    "cost_share_of_sales": "down",
    "rejected": "down",
    "groups.gain": "up",
    "groups.lose": "down",
    "groups.earned_points_change": "up",
    "groups.reward_value_change": "up",
}


def good_direction(path: str) -> str | None:
    """"up", "down" or None (neutral): which way the figure at ``path`` is good news (``GOOD_DIRECTION``)."""
    return GOOD_DIRECTION.get(path) or GOOD_DIRECTION.get(path.split(".", 1)[0])


def tone(path: str, change: Any) -> str:
    """The CSS class of a change of the figure at ``path``: "good", "bad", or "" (neutral, none or unknown)."""
    direction = good_direction(path)
    if change is None or direction is None:
        return ""
    try:
        number = Decimal(str(change))
    except ArithmeticError:
        return ""
    if number == 0:
        return ""
    return "good" if (number > 0) == (direction == "up") else "bad"


def reward_labels(result: SimulationResult) -> dict[str, str]:
    """What to call each reward: its label (``reward x "Label"``), the new rules' before the baseline's; its
    name when neither gives one."""
    labels: dict[str, str] = {}
    figures = [result.new] + ([result.baseline] if result.baseline is not None else [])
    for side in reversed(figures):
        labels.update((name, info.label or labels.get(name) or name) for name, info in side.program.rewards.items())
    return labels


def _figure_rows(summary: dict[str, Any], labels: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(label, path) of every figure in the summary table; ``labels``: what to call each reward."""
    currency = summary.get("currency", "")
    rows = [("Events read", "events"), ("Rejected events", "rejected"), ("Customers", "customers")]
    rows += [(f"Points {key}", f"points.{key}") for key in summary["points"]]
    if "liability" in summary:
        rows += [(f"Outstanding points in money ({currency})", "liability.outstanding"),
                 (f"Expired points in money ({currency})", "liability.expired")]
    if "point_value" in summary:
        source = summary.get("point_value_source")
        rows.append((f"Point value ({currency}" + (f", {source}" if source else "") + ")", "point_value"))
    names = _union(summary["rewards"], summary.get("baseline", {}).get("rewards", {}))
    rows += [(f"Reward: {(labels or {}).get(name, name)}", f"rewards.{name}") for name in names]
    tiers = _union(summary["tiers"], summary.get("baseline", {}).get("tiers", {}))
    rows += [(f"Tier {name}", f"tiers.{name}") for name in tiers]
    segments = _union(summary.get("segments", {}), summary.get("baseline", {}).get("segments", {}))
    rows += [(f"Segment {name} (customers)", f"segments.{name}") for name in segments]
    rows.append((f"Cost of rewards ({currency})", "cost"))
    # Only for histories whose purchases use rewards (``rewards_used``): elsewhere 0.00 would read as "free".
    if any(summary.get("rewards_used", {}).values()) or any(
            summary.get("baseline", {}).get("rewards_used", {}).values()):
        rows.append((f"Value of the rewards used ({currency})", "cost_used"))
    if summary.get("cost_unknown") or summary.get("baseline", {}).get("cost_unknown"):
        rows.append(("Rewards of unknown cost (not in the cost)", "cost_unknown"))
    if "sales" in summary:
        rows += [(f"Sales: purchases less refunds ({currency})", "sales"),
                 ("Cost as a share of sales (%)", "cost_share_of_sales")]
    return rows


# Figures that may be unknown (null in the summary: no point value, no sales): shown as "–", never as 0.
MAYBE_UNKNOWN = frozenset({"liability.outstanding", "liability.expired", "point_value", "cost_share_of_sales"})


def figure_value(data: dict[str, Any] | None, path: str) -> Any:
    """The figure at ``path`` for a table cell: a name missing on one side counts 0, an unknown figure None."""
    value = _get(data, path)
    return value if value is not None or path in MAYBE_UNKNOWN else 0


def change_text(summary: dict[str, Any], path: str) -> str:
    """The change of the figure at ``path`` against the baseline, with its percentage of the old figure:
    "+30 (+25.0 %)"; "–" when unknown; the percentage left out when the change is 0 or the old figure is 0."""
    diff = figure_value(summary.get("delta"), path)
    text = _signed(diff)
    pct = _get(summary.get("delta_pct"), path)
    if diff is not None and pct is not None and Decimal(str(diff)) != 0:
        text += f" ({'' if pct.startswith('-') else '+'}{pct} %)"
    return text


def cost_unknown_note(summary: dict[str, Any], labels: dict[str, str] | None = None) -> str:
    """A sentence for people on the rewards whose cost is unknown ('' when every reward has a value).

    Such a reward is counted in ``rewards`` but not in ``cost``: saying so
    keeps a reader from taking the cost as complete, or the reward as free.
    """
    parts = []
    baseline = summary.get("baseline")
    for which, figures in ((" under the new rules" if baseline else "", summary),
                           (" under the baseline rules", baseline or {})):
        names = figures.get("cost_unknown") or []
        if not names:
            continue
        counts = figures.get("rewards", {})
        parts.append(", ".join(f"{(labels or {}).get(name, name)} ({_times(counts.get(name, 0))})" for name in names)
                     + which)
    if not parts:
        return ""
    first = (summary.get("cost_unknown") or summary["baseline"]["cost_unknown"])[0]
    return ("The cost of rewards leaves out " + "; ".join(parts) + ": no value is declared, so their cost is "
            f"unknown, not zero. Declare what one costs you: reward {first} \"…\" value <cost> "
            f"{summary.get('currency', '')}.")


# ------------------------------------------------------------------- the words at the top


ASSUMPTION = ("The same purchases are replayed under both versions of the rules: customers' behaviour is assumed "
              "unchanged by the rule change. A change that makes customers buy more often, or less, is not in "
              "these figures.")
ASSUMPTION_ALONE = ("The history is replayed as it happened: these are the figures the rules would have given "
                    "for exactly these purchases.")


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def _verb(count: int, verb: str) -> str:
    return verb + "s" if count == 1 else verb


def _pct_text(pct: str | None) -> str:
    """" (+12.0 %)" for a percentage change; "" when unknown."""
    return "" if pct is None else f" ({'' if pct.startswith('-') else '+'}{pct} %)"


def _amount(value: str) -> str:
    """A money string without its sign, for people: "-1234.50" → "1,234.50"."""
    return f"{abs(Decimal(value)):,.2f}"


def _sizes(figures: dict[str, int], old: dict[str, int] | None, changed_only: bool, tiers: bool = False) -> str:
    """ "gold 15 → 42, no tier 985 → 888": group sizes (against ``old`` when given)."""
    parts = []
    # A group only the baseline has is 0 under the new rules: it is listed too, so its loss is not hidden.
    gone = {name: 0 for name in (old or {}) if name not in figures}
    for name, count in {**figures, **gone}.items():
        shown = "no tier" if tiers and name == "none" else name
        if old is None or name not in old:
            parts.append(f"{shown} {count:,}")
        elif old[name] != count or not changed_only:
            parts.append(f"{shown} {old[name]:,} → {count:,}")
    return ", ".join(parts)


def headline(summary: dict[str, Any], names: Names) -> list[str]:
    """The sentences at the top of the report: what the change does (or, without a baseline, what the rules
    give), in plain words, from the summary's figures alone. Plain text: the caller escapes it."""
    if summary.get("baseline") is None:
        return _headline_alone(summary)
    old, change, pct = summary["baseline"], summary["delta"], summary.get("delta_pct") or {}
    currency = summary.get("currency", "")
    new_name = f"the new rules ({names.rules})"
    old_name = f"the baseline ({names.baseline})" if names.baseline else "the baseline"
    sentences = []
    earned = change["points"]["earned"]
    replayed = f"Replayed over the same {_plural(summary['events'], 'event')}, {new_name} give customers"
    if earned:
        sentences.append(f"{replayed} {abs(earned):,} {'more' if earned > 0 else 'fewer'} points"
                         f"{_pct_text(_get(pct, 'points.earned'))} than {old_name}.")
    else:
        sentences.append(f"{replayed} as many points as {old_name}.")
    cost = Decimal(change["cost"])
    share, old_share = summary.get("cost_share_of_sales"), old.get("cost_share_of_sales")
    if cost:
        text = f"The rewards cost {_amount(change['cost'])} {currency} {'more' if cost > 0 else 'less'}" \
               f"{_pct_text(_get(pct, 'cost'))}"
        if share is not None and old_share is not None:
            text += f": {share} % of sales instead of {old_share} %"
        sentences.append(text + ".")
    else:
        sentences.append(f"The rewards cost the same, {_num(summary['cost'])} {currency}.")
    groups = summary.get("groups", {}).get("tiers", {})
    if groups:
        gain, lose, same = (sum(g[key] for g in groups.values()) for key in ("gain", "lose", "same"))
        sentences.append(f"{_plural(gain, 'customer')} {_verb(gain, 'gain')}, {lose:,} {_verb(lose, 'lose')} and "
                         f"{same:,} {_verb(same, 'see')} no change.")
    held = change["points"]["outstanding"]
    if held:
        worth = _get(change, "liability.outstanding")
        sentences.append(f"At the end customers hold {abs(held):,} {'more' if held > 0 else 'fewer'} points"
                         + (f", worth {_amount(worth)} {currency}" if worth is not None else "")
                         + f"{_pct_text(_get(pct, 'points.outstanding'))}.")
    expired = change["points"]["expired"]
    if expired:
        worth = _get(change, "liability.expired")
        sentences.append(f"{abs(expired):,} {'more' if expired > 0 else 'fewer'} points expire"
                         + (f" ({_amount(worth)} {currency})" if worth is not None else "") + ".")
    tiers = _sizes(summary["tiers"], old["tiers"], changed_only=True, tiers=True)
    if tiers:
        sentences.append(f"Customers per tier at the end: {tiers}.")
    segments = _sizes(summary.get("segments", {}), old.get("segments", {}), changed_only=False)
    if segments:
        sentences.append(f"Customers per segment at the end: {segments}.")
    return sentences


def _headline_alone(summary: dict[str, Any]) -> list[str]:
    currency = summary.get("currency", "")
    points = summary["points"]
    rewards = sum(summary["rewards"].values())
    text = (f"Over {_plural(summary['events'], 'event')}, {_plural(summary['customers'], 'customer')} earned "
            f"{points['earned']:,} points and received {_plural(rewards, 'reward')} costing "
            f"{_num(summary['cost'])} {currency}")
    if summary.get("cost_share_of_sales") is not None:
        text += f", {summary['cost_share_of_sales']} % of sales ({_num(summary['sales'])} {currency})"
    sentences = [text + "."]
    worth = _get(summary, "liability.outstanding")
    sentences.append(f"At the end they hold {points['outstanding']:,} points"
                     + (f", worth {_num(worth)} {currency}" if worth is not None else "") + ".")
    if points["expired"]:
        lost = _get(summary, "liability.expired")
        sentences.append(f"{points['expired']:,} points expired" + (f" ({_num(lost)} {currency})" if lost else "") + ".")
    if len(summary["tiers"]) > 1:
        sentences.append(f"Customers per tier at the end: {_sizes(summary['tiers'], None, False, tiers=True)}.")
    if summary.get("segments"):
        sentences.append(f"Customers per segment at the end: {_sizes(summary['segments'], None, False)}.")
    return sentences


def _times(count: int) -> str:
    return "handed out once" if count == 1 else f"handed out {count:,} times"


def _get(data: dict[str, Any] | None, path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def summary_table(summary: dict[str, Any], labels: dict[str, str] | None = None) -> str:
    baseline = summary.get("baseline")
    head = "<tr><th>Figure</th><th>New rules</th>" + (
        "<th>Baseline rules</th><th>Change</th>" if baseline else "") + "</tr>"
    body = []
    for label, path in _figure_rows(summary, labels):
        new_value = figure_value(summary, path)
        cells = f"<td>{html.escape(label)}</td><td class=num>{_num(new_value)}</td>"
        if baseline is not None:
            old_value = figure_value(baseline, path)
            change = figure_value(summary["delta"], path)
            cells += f"<td class=num>{_num(old_value)}</td>"
            if isinstance(new_value, list) or isinstance(old_value, list):
                cells += "<td></td>"  # names have no difference
            else:
                cells += f"<td class='num {tone(path, change)}'>{html.escape(change_text(summary, path))}</td>"
        body.append(f"<tr>{cells}</tr>")
    return f"<table class=figures><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def groups_table(groups: dict[str, Any], key: str, currency: str) -> str:
    """Gains and losses of one kind of group ("tiers" or "segments"): one row per group, the summary's
    ``groups`` figures, each change coloured by what it means for the group's customers."""
    title = {"tiers": "Tier", "segments": "Segment"}[key]
    head = (f"<tr><th>{title} (new rules, at the end)</th><th>Customers</th><th>Gain</th><th>Lose</th>"
            f"<th>No change</th><th>Change in points earned</th><th>Change in reward value ({html.escape(currency)})</th></tr>")
    body = []
    for name, figures in groups.get(key, {}).items():
        cells = [f"<td>{html.escape(name)}</td>", f"<td class=num>{_num(figures['customers'])}</td>"]
        for column in ("gain", "lose"):
            cells.append(f"<td class='num {tone('groups.' + column, figures[column])}'>{_num(figures[column])}</td>")
        cells.append(f"<td class=num>{_num(figures['same'])}</td>")
        for column in ("earned_points_change", "reward_value_change"):
            cells.append(f"<td class='num {tone('groups.' + column, figures[column])}'>"
                         f"{html.escape(_signed(figures[column]))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table class=figures><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


EFFECT_ROWS = (
    ("Purchases", "purchases"),
    ("Customers who purchased", "purchasing_customers"),
    ("Customers with 2 or more purchases", "repeat_purchasers"),
    ("Repeat-purchase rate", "repeat_purchase_rate"),
    ("Purchases per purchasing customer", "purchases_per_customer"),
    ("Purchase frequency (per purchasing customer per month)", "purchases_per_customer_per_month"),
    ("Spend", "spend"),
    ("Average basket", "average_basket"),
    ("From", "from"),
    ("To", "to"),
)


def effect_table(effect: dict[str, Any], currency: str) -> str:
    columns = [("Whole history", "all")]
    if "before" in effect:
        columns += [("Before", "before"), ("From then on", "after")]
    head = "<tr><th>Measure</th>" + "".join(f"<th>{html.escape(title)}</th>" for title, _ in columns) + "</tr>"
    body = []
    for label, key in EFFECT_ROWS:
        cells = []
        for _, column in columns:
            value = effect[column].get(key)
            if key == "repeat_purchase_rate" and value is not None:
                text = f"{value * 100:.1f} %"
            elif key in ("spend", "average_basket") and value is not None:
                text = f"{_num(value)} {currency}"
            elif key in ("from", "to") and value:
                text = value[:16].replace("T", " ")
            else:
                text = _num(value)
            cells.append(f"<td class=num>{html.escape(text)}</td>")
        body.append(f"<tr><td>{html.escape(label)}</td>{''.join(cells)}</tr>")
    return f"<table class=figures><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def effect_detail(effect: dict[str, Any], currency: str) -> str:
    """The cohort, NPS and members tables (``effect_tables``), each with its title and note."""
    from poletti.interpreter.simulate.effect_tables import effect_tables

    parts = []
    for table in effect_tables(effect, currency):
        head = "<tr>" + "".join(f"<th>{html.escape(cell)}</th>" for cell in table.header) + "</tr>"
        body = "".join("<tr><td>" + html.escape(row[0]) + "</td>"
                       + "".join(f"<td class=num>{html.escape(cell)}</td>" for cell in row[1:]) + "</tr>"
                       for row in table.rows)
        parts += [f"<h3>{html.escape(table.title)}</h3>",
                  f"<table class='figures effect'><thead>{head}</thead><tbody>{body}</tbody></table>"]
        if table.note:
            parts.append(f"<p class=note>{html.escape(table.note)}</p>")
    return "\n".join(parts)


def months_table(new: Sequence[Month], old: Sequence[Month] | None, activity: Sequence[ActivityMonth],
                 currency: str) -> str:
    head = ("<tr><th>Month</th><th>Earned</th><th>Spent</th><th>Expired</th><th>Reversed</th><th>Outstanding</th>"
            f"<th>Rewards</th><th>Cost ({html.escape(currency)})</th><th>Purchases</th><th>Customers</th>"
            + ("<th>Outstanding (baseline)</th><th>Cost (baseline)</th>" if old is not None else "") + "</tr>")
    body = []
    old_by_month = {m.start: m for m in old or []}
    activity_by_month = {m.start: m for m in activity}
    for month in new:
        act = activity_by_month.get(month.start)
        cells = [month.start.strftime("%Y-%m"), _num(month.earned), _num(month.spent), _num(month.expired),
                 _num(month.reversed), _num(month.outstanding), _num(sum(month.rewards.values())),
                 f"{month.cost:.2f}", _num(act.purchases if act else 0), _num(month.customers)]
        if old is not None:
            previous = old_by_month.get(month.start)
            cells += [_num(previous.outstanding if previous else 0), f"{previous.cost if previous else 0:.2f}"]
        body.append("<tr>" + "".join(f"<td class=num>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table class='figures months'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def rejected_table(result: SimulationResult, limit: int = 20) -> str:
    shown = result.rejections[:limit]
    if not shown:
        return "<p>No event was rejected.</p>"
    rows = "".join(
        f"<tr><td class=num>{r.row}</td><td>{html.escape(r.event_id or '')}</td>"
        f"<td>{html.escape(r.customer or '')}</td><td>{html.escape(r.rules)}</td><td>{html.escape(r.reason)}</td></tr>"
        for r in shown)
    more = ""
    total = result.summary["rejected"]
    if total > len(shown):
        more = f"<p class=note>The first {len(shown)} of {total:,} are shown; <code>--rejected OUT.csv</code> lists them all.</p>"
    return ("<table class=figures><thead><tr><th>Row</th><th>Event</th><th>Customer</th><th>Rejected by</th>"
            f"<th>Reason</th></tr></thead><tbody>{rows}</tbody></table>{more}")


# -------------------------------------------------------------------- page

CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 0 auto; max-width: 1180px; padding: 24px 32px 64px; color: #1d1d1f; background: #fff; line-height: 1.45; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 36px 0 8px; padding-top: 12px; border-top: 1px solid #e5e5e5; }
p.meta, p.note { color: #555; margin: 4px 0; font-size: .92rem; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 18px 0 8px; }
.card { border: 1px solid #e2e2e2; border-radius: 8px; padding: 10px 14px; min-width: 150px; }
.card .label { font-size: .8rem; color: #666; text-transform: uppercase; letter-spacing: .03em; }
.card .value { font-size: 1.35rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .change { font-size: .85rem; font-variant-numeric: tabular-nums; }
.good { color: #1a7f37; } .bad { color: #c0362c; }
table.figures { border-collapse: collapse; margin: 8px 0; font-size: .9rem; }
table.figures th, table.figures td { padding: 4px 12px; border-bottom: 1px solid #eee; text-align: left; }
table.figures th { background: #f6f6f6; font-weight: 600; }
table.figures td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.chart { margin: 14px 0 6px; }
.chart svg { display: block; width: 100%; height: auto; }
h3 { font-size: 1rem; margin: 18px 0 4px; }
p.headline { font-size: 1.08rem; margin: 14px 0 8px; padding: 10px 14px; border-left: 4px solid #0072B2;
             background: #f3f8fc; }
p.assumption { margin: 6px 0; font-size: .92rem; color: #333; }
.warning { background: #fff6e0; border: 1px solid #f0d28a; padding: 8px 12px; border-radius: 6px; }
details summary { cursor: pointer; color: #0b5cad; margin: 8px 0; }
code { background: #f3f3f3; padding: 1px 4px; border-radius: 3px; }
@media print {
  @page { margin: 14mm; }
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { break-after: avoid; page-break-after: avoid; }
  h2, h3 { break-after: avoid; }
  .card, .chart, table.figures tr, p.headline { break-inside: avoid; page-break-inside: avoid; }
  table.figures { width: 100%; }
  details > summary { display: none; }
}
"""


def _card(label: str, value: str, change: Any = None, pct: str | None = None, path: str = "") -> str:
    """A figure in large type; with a baseline, its change below, coloured by what it means (``tone``)."""
    extra = ""
    if change is not None:
        shown = _signed(change)
        if pct is not None and Decimal(str(change)) != 0:
            shown += f" ({'' if pct.startswith('-') else '+'}{pct} %)"
        extra = f"<div class='change {tone(path, change)}'>{html.escape(shown)} vs baseline</div>"
    return (f"<div class=card><div class=label>{html.escape(label)}</div>"
            f"<div class=value>{html.escape(value)}</div>{extra}</div>")


def _groups_section(groups: dict[str, Any], currency: str, chart: str) -> list[str]:
    """Who gains and who loses by tier and by segment: the chart and a table for each."""
    if not groups:
        return []
    out = ["<h2>Who gains and who loses, by group</h2>",
           "<p class=note>Each customer is counted in the tier the <strong>new</strong> rules give them at the "
           "end (\"none\" for no tier), and in every segment the new rules put them in at the end. A customer "
           "gains when the rewards they receive are worth more under the new rules — or, worth the same, when "
           "they earn more points, or else hold more at the end; they lose in the opposite case. The changes are "
           "sums over the group's customers: points earned and the value of the rewards received.</p>",
           chart, "<h3>By tier</h3>", groups_table(groups, "tiers", currency)]
    if groups.get("segments"):
        out += ["<h3>By segment</h3>", groups_table(groups, "segments", currency)]
    return out


def render_report(result: SimulationResult, names: Names = Names(), png_dir: str | None = None) -> str:
    """The report as one HTML document (see the module doc); ``png_dir`` also saves each chart as PNG."""
    summary = result.summary
    currency = summary.get("currency", "")
    baseline = summary.get("baseline")
    change = summary.get("delta", {})
    new_months = result.new.months
    old_months = result.baseline.months if result.baseline is not None else None
    title = result.new.program.title or names.rules

    tz = result.tz
    partial = None
    if new_months and result.end is not None:
        last = new_months[-1].start
        following = day_start(date(last.year + last.month // 12, last.month % 12 + 1, 1), tz)
        if result.end < following - timedelta(days=1):  # a month short of less than a day is as good as whole
            partial = (datetime(last.year, last.month, 1), result.end.astimezone(tz).replace(tzinfo=None))
    effect_from = result.activity.effect_from
    effect_local = effect_from.astimezone(tz).replace(tzinfo=None) if effect_from is not None else None
    labels = reward_labels(result)
    has_segments = bool(summary.get("segments") or (baseline or {}).get("segments"))
    groups = summary.get("groups") or {}
    charts: list[Chart] = []
    if new_months:
        charts.append(points_chart(new_months, old_months, png_dir, partial))
        charts.append(rewards_chart(new_months, old_months, currency, png_dir, partial, labels))
        charts.append(tiers_chart(new_months, old_months, png_dir, partial))
        if has_segments:
            charts.append(segments_chart(new_months, old_months, png_dir, partial))
        charts.append(activity_chart(result.activity.months, currency, effect_local, png_dir, partial))
    if baseline is not None and new_months:
        charts.append(comparison_chart(summary, png_dir, labels))
        charts.append(delta_chart(result.deltas(), currency, png_dir))
        charts.append(groups_chart(groups, png_dir))
    by_name = {chart.name: chart for chart in charts}

    def chart(name: str) -> str:
        item = by_name.get(name)
        return f"<div class=chart>{item.svg}</div>" if item else ""

    def delta_of(path: str) -> Any:
        return _get(change, path) if baseline is not None else None

    def pct_of(path: str) -> str | None:
        return _get(summary.get("delta_pct"), path) if baseline is not None else None

    def card(label: str, value: str, path: str) -> str:
        return _card(label, value, delta_of(path), pct_of(path), path)

    points = summary["points"]
    liability = summary.get("liability") or {}
    money_cards = []
    if liability.get("outstanding") is not None:
        money_cards.append(card(f"Outstanding points in money ({currency})", _num(liability["outstanding"]),
                                "liability.outstanding"))
    if liability.get("expired") is not None:
        money_cards.append(card(f"Expired points in money ({currency})", _num(liability["expired"]),
                                "liability.expired"))
    if summary.get("cost_share_of_sales") is not None:
        money_cards.append(card("Cost as a share of sales", f"{summary['cost_share_of_sales']} %",
                                "cost_share_of_sales"))
    rewards_change = sum(change.get("rewards", {}).values()) if baseline is not None else None
    old_rewards = sum(baseline.get("rewards", {}).values()) if baseline is not None else 0
    cards = "".join([
        _card("Events", f"{summary['events']:,}"),
        card("Rejected", f"{summary['rejected']:,}", "rejected"),
        card("Customers", f"{summary['customers']:,}", "customers"),
        card("Points earned", f"{points['earned']:,}", "points.earned"),
        card("Outstanding points", f"{points['outstanding']:,}", "points.outstanding"),
        card("Expired points", f"{points['expired']:,}", "points.expired"),
        *money_cards,
        _card("Rewards granted", f"{sum(summary['rewards'].values()):,}", rewards_change,
              delta_pct(rewards_change, old_rewards) if baseline is not None else None, "rewards"),
        card(f"Cost ({currency})" + (", some unknown" if summary.get("cost_unknown") else ""),
             _num(summary["cost"]), "cost"),
    ])
    meta = [f"Rules: <code>{html.escape(names.rules)}</code>"]
    if names.baseline:
        meta.append(f"baseline: <code>{html.escape(names.baseline)}</code>")
    meta.append(f"history: <code>{html.escape(names.history)}</code>")
    period = summary.get("period", {})
    if period.get("from"):
        meta.append(f"from {html.escape(period['from'][:16].replace('T', ' '))} "
                    f"to {html.escape(period['to'][:16].replace('T', ' '))}")
    notes = []
    if summary.get("reordered"):
        notes.append("<p class=warning>The history was not in time order; it was sorted by time "
                     "(events at the same instant keep their order in the file) before the simulation.</p>")
    if summary.get("after_until"):
        notes.append(f"<p class=note>{summary['after_until']:,} events after the end of the simulation "
                     "(<code>--until</code>) were not applied.</p>")
    unknown = cost_unknown_note(summary, labels)
    if unknown:
        notes.append(f"<p class=warning>{html.escape(unknown)}</p>")
    words = " ".join(html.escape(sentence) for sentence in headline(summary, names))
    assumption = ASSUMPTION if baseline is not None else ASSUMPTION_ALONE

    sections = [
        f"<h1>{html.escape(title)}: simulation</h1>",
        f"<p class=meta>{' · '.join(meta)}</p>",
        f"<p class=meta>Generated {html.escape(names.generated)} by poletti.</p>" if names.generated else "",
        f"<p class=headline>{words}</p>",
        f"<p class=assumption><strong>Assumption:</strong> {html.escape(assumption)}</p>",
        *notes,
        f"<div class=cards>{cards}</div>",
        "<p class=note>A change is green when it is good news for the program and its members (more points "
        "or rewards to customers, a lower cost or liability), red when it is bad news; a change that is "
        "neither is not coloured.</p>" if baseline is not None else "",
        "<h2>Summary</h2>",
        "<p class=note>Points earned counts every point added to a balance (purchases, fixed awards and points "
        "granted by rules); outstanding is what all customers hold at the end, pending points included, "
        "less any debt. In money, points are worth the point value (declared with <code>point value</code>, or "
        "the lowest value per point of the rewards points turn into); sales are the accepted purchases less "
        "refunds. Changes against the baseline are also given as a percentage of the baseline figure.</p>",
        summary_table(summary, labels),
    ]
    if baseline is not None:
        sections += ["<h2>Compared with the baseline</h2>", chart("comparison"), chart("deltas")]
        sections += _groups_section(groups, currency, chart("groups"))
    if new_months:
        sections += [
            "<h2>Points over time</h2>", chart("points"),
            "<h2>Rewards and their cost by month</h2>",
            f"<p class=note>{html.escape(unknown)}</p>" if unknown else "", chart("rewards"),
            "<h2>Tier sizes over time</h2>", chart("tiers"),
            *(["<h2>Segment sizes over time</h2>", "<p class=note>Customers in each segment at each month's end. "
               "A customer can be in several segments, or in none, so the sizes do not add up to the customers."
               "</p>", chart("segments")] if has_segments else []),
            "<h2>Purchases</h2>", chart("activity"),
        ]
    from poletti.interpreter.simulate import report_wallet

    sections += report_wallet.sections(summary)  # issue 13: the voucher funnel, perks, partners
    sections += [
        "<h2>Program effect</h2>",
        "<p class=note>From the accepted purchases of the history under the new rules. Repeat-purchase rate: the "
        "share of purchasing customers with two or more purchases in the period; purchase frequency: purchases per "
        "purchasing customer per month (of 30.44 days) of the period; average basket: the mean purchase amount "
        "before refunds.</p>",
        effect_table(summary["effect"], currency),
        effect_detail(summary["effect"], currency),
    ]
    if new_months:
        sections += ["<h2>Month by month</h2>", "<details><summary>Show the figures of every month</summary>",
                     months_table(new_months, old_months, result.activity.months, currency), "</details>"]
    sections += ["<h2>Rejected events</h2>", rejected_table(result)]
    body = "\n".join(s for s in sections if s)
    return (f"<!DOCTYPE html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n"
            f"<meta name=viewport content='width=device-width, initial-scale=1'>\n"
            f"<title>{html.escape(title)}: simulation</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n"
            "</body>\n</html>\n")
