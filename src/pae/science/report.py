"""The reproduction report as data: blocks (headings, paragraphs, tables, images) rendered to Markdown and to a
self-contained offline HTML page, the cells that put our value beside the paper's, and the README results block
that quotes the report's numbers. Pure: values in, strings out; the stage driver `pae.stages.report` reads and
writes the files.

Blocks are tuples: ("h", level, text), ("p", text), ("list", [text, ...]), ("table", header, rows),
("img", src, caption), ("pre", text).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

Block = tuple

SUMMARY_SEP = " · "  # joins table, row and column into one README summary key


def fmt_number(value: Any, digits: int = 3) -> str:
    """A number with `digits` decimals (3 significant digits below 10^-(digits-1), 1 decimal from 10 on, e.g. an
    FID); text as it is; '–' for NaN."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    value = float(value)
    if value != 0 and abs(value) < 10 ** -(digits - 1):
        return f"{value:.3g}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.{digits}f}"


def fixed(value: Any, digits: int = 3) -> str:
    """A std or difference: `digits` decimals (1 from 10 on), never the significant-digit form of fmt_number."""
    if not is_number(value):
        return "–"
    return f"{float(value):.1f}" if abs(float(value)) >= 10 else f"{float(value):.{digits}f}"


def is_number(value: Any) -> bool:
    return not isinstance(value, str) and value is not None and not (isinstance(value, float) and math.isnan(value))


def exceeds_two_std(difference: Any, std: Any, n_seeds: Any) -> bool:
    """Whether |ours − paper| exceeds 2 × the std over seeds (only defined with more than one seed)."""
    if not (is_number(difference) and is_number(std) and is_number(n_seeds)) or int(n_seeds) < 2:
        return False
    return abs(float(difference)) > 2 * float(std)


def comparison_cell(line: Mapping[str, Any], digits: int = 3, reference: str = "paper") -> str:
    """'ours ± std (paper p, Δ d)' from one line of a tidy comparison table (columns ours, ours_std, n_seeds,
    paper, difference; `reference` names where the `paper` column comes from); '†' marks a gap to it larger
    than 2 std over seeds."""
    ours = line.get("ours")
    text = fmt_number(ours, digits)
    if is_number(ours) and is_number(line.get("n_seeds")) and int(line["n_seeds"]) > 1:
        text += f" ± {fixed(line.get('ours_std'), digits)}"
    if is_number(line.get("paper")):
        text += f" ({reference} {fmt_number(line['paper'], digits)}"
        if is_number(line.get("difference")):
            diff = float(line["difference"])
            text += f", Δ {diff:+.1f}" if abs(diff) >= 10 else f", Δ {diff:+.{digits}f}"
        text += ")"
    if exceeds_two_std(line.get("difference"), line.get("ours_std"), line.get("n_seeds")):
        text += " †"
    return text


def comparison_rows(table: pd.DataFrame, digits: int = 3, reference: str = "paper") -> tuple[list[str], list[list[str]]]:
    """A wide table (rows × columns, cells from `comparison_cell`) of a tidy comparison table."""
    columns = list(dict.fromkeys(table["column"]))
    rows = []
    for r in dict.fromkeys(table["row"]):
        sub = table[table["row"] == r].set_index("column")
        rows.append([str(r)] + [comparison_cell(sub.loc[c].to_dict(), digits, reference) if c in sub.index else "–"
                                for c in columns])
    return ["", *map(str, columns)], rows


def two_std_gaps(table: pd.DataFrame, digits: int = 3) -> list[str]:
    """The cells of a comparison table whose gap to the paper exceeds 2 std over seeds, as sentences."""
    out = []
    for _, line in table.iterrows():
        if exceeds_two_std(line.get("difference"), line.get("ours_std"), line.get("n_seeds")):
            out.append(f"{line['row']} / {line['column']}: {fmt_number(line['ours'], digits)} ± "
                       f"{fixed(line['ours_std'], digits)} against the paper's {fmt_number(line['paper'], digits)} "
                       f"(Δ {float(line['difference']):+.{digits}f}, {abs(float(line['difference'])) / float(line['ours_std']):.1f} std)"
                       if float(line["ours_std"]) > 0 else
                       f"{line['row']} / {line['column']}: Δ {float(line['difference']):+.{digits}f} with zero std")
    return out


def frame_rows(frame: pd.DataFrame, digits: int = 3) -> tuple[list[str], list[list[str]]]:
    """Any data frame as (header, rows), numbers with `digits` decimals."""
    def cell(v: Any) -> str:
        if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
            return str(int(v))  # counts, K, seeds
        return fmt_number(v, digits) if isinstance(v, float) else str(v)

    return [str(c) for c in frame.columns], [[cell(v) for v in line] for line in frame.itertuples(index=False)]


def summary_values(name: str, table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Machine-readable cells of a comparison table for the README check: 'name · row · column' → ours,
    ours_std, n_seeds, paper (None where NaN or text)."""

    def num(v: Any) -> float | None:
        return float(v) if is_number(v) else None

    return {SUMMARY_SEP.join([name, str(line["row"]), str(line["column"])]): {
        "ours": num(line.get("ours")), "ours_std": num(line.get("ours_std")),
        "n_seeds": int(line["n_seeds"]) if is_number(line.get("n_seeds")) else None, "paper": num(line.get("paper"))}
        for _, line in table.iterrows()}


# ------------------------------------------------------------------------------------------------ rendering


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: Sequence[Block]) -> str:
    """The blocks as GitHub Markdown."""
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out += ["#" * block[1] + " " + block[2], ""]
        elif kind == "p":
            out += [block[1], ""]
        elif kind == "list":
            out += [f"- {item}" for item in block[1]] + [""]
        elif kind == "table":
            header, rows = block[1], block[2]
            out.append("| " + " | ".join(map(_md_cell, header)) + " |")
            out.append("|" + "---|" * len(header))
            out += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in rows]
            out.append("")
        elif kind == "img":
            out += [f"![{block[2]}]({block[1]})", "", f"*{block[2]}*", ""]
        elif kind == "pre":
            out += ["```", block[1].rstrip("\n"), "```", ""]
        else:
            raise ValueError(f"unknown report block {kind!r}")
    return "\n".join(out).rstrip("\n") + "\n"


_CODE = re.compile(r"`([^`]+)`")
STYLE = """body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em;line-height:1.4;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{border:1px solid #bbb;padding:0.25em 0.6em;text-align:left}
th{background:#eee}code,pre{background:#f4f4f4;font-size:90%}pre{padding:0.5em;overflow-x:auto}
.wide{overflow-x:auto}figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}figcaption{font-style:italic}"""


def _inline(text: str) -> str:
    """Escaped text with `code` spans."""
    return _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", html.escape(str(text), quote=False))


def render_html(blocks: Sequence[Block], title: str) -> str:
    """The blocks as one HTML page that needs nothing but its image files (no scripts, fonts or styles from the
    network). Every <img> records whether it loaded (data-loaded / data-broken), for the browser check."""
    body: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            slug = re.sub(r"[^a-z0-9]+", "-", block[2].lower()).strip("-")
            body.append(f'<h{block[1]} id="{slug}">{_inline(block[2])}</h{block[1]}>')
        elif kind == "p":
            body.append(f"<p>{_inline(block[1])}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_inline(h)}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in block[2])
            body.append(f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>')
        elif kind == "img":
            src, cap = html.escape(block[1]), _inline(block[2])
            body.append(f'<figure><img src="{src}" alt="{html.escape(block[2])}" '
                        'onload="this.dataset.loaded=1" onerror="this.dataset.broken=1">'
                        f"<figcaption>{cap}</figcaption></figure>")
        elif kind == "pre":
            body.append(f"<pre>{html.escape(block[1])}</pre>")
        else:
            raise ValueError(f"unknown report block {kind!r}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def relocate_assets(text: str, old: str, new: str) -> str:
    """Markdown or HTML with every image link under folder `old` (e.g. 'figures/') moved under `new`."""
    return text.replace(f"]({old}", f"]({new}").replace(f'src="{old}', f'src="{new}')


# ------------------------------------------------------------------------------------- README results block

BLOCK = re.compile(r"<!-- results: (?P<source>\S+) -->\n(?P<body>.*?)<!-- /results -->", re.S)
NUMBER = re.compile(r"[−+-]?\d+(?:\.\d+)?")


def parse_summary_block(text: str) -> tuple[str, list[tuple[str, list[str]]]] | None:
    """The README's results block: (snapshot values file it quotes, [(key 'table · row · column', the cells
    after the key)]), or None when the README has no block. Lines of the block that are not table rows with a
    key containing ' · ' are ignored (headers, separators, prose)."""
    m = BLOCK.search(text)
    if not m:
        return None
    rows = []
    for line in m.group("body").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.strip().startswith("|") and SUMMARY_SEP.strip() in cells[0]:
            rows.append((cells[0], cells[1:]))
    return m.group("source"), rows


def summary_rows(values: Mapping[str, Mapping[str, Any]], prefixes: Sequence[str], digits: int = 3) -> list[str]:
    """README block rows (`| key | ours [± std] | paper |`) for every snapshot value whose key starts with one
    of `prefixes`, in the snapshot's order: what `summary_mismatches` reads back."""
    rows = []
    for key, v in values.items():
        if any(key.startswith(p) for p in prefixes) and v.get("ours") is not None:
            ours = f"{v['ours']:.{digits}f}" + (f" ± {v['ours_std']:.{digits}f}" if (v.get("n_seeds") or 1) > 1 else "")
            paper = "–" if v.get("paper") is None else f"{v['paper']:.{digits}f}"
            rows.append(f"| {key} | {ours} | {paper} |")
    return rows


def summary_mismatches(rows: Sequence[tuple[str, Sequence[str]]], values: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every number of the README block that the snapshot does not hold. Row cells are read as: ours (optionally
    'ours ± std'), then paper ('–' when none); each number must equal the snapshot value rounded to as many
    decimals as the README shows."""
    problems = []
    for key, cells in rows:
        if key not in values:
            problems.append(f"{key}: not in the snapshot (keys look like {next(iter(values), 'none')!r})")
            continue
        v = values[key]
        fields = ["ours", "ours_std"] if cells and "±" in cells[0] else ["ours"]
        expected = list(zip(fields, NUMBER.findall(cells[0]) if cells else [], strict=False))
        if len(cells) > 1 and NUMBER.search(cells[1]):
            expected.append(("paper", NUMBER.search(cells[1]).group()))
        for field, shown in expected:
            shown = shown.replace("−", "-")
            decimals = len(shown.split(".")[1]) if "." in shown else 0
            actual = v.get(field)
            if actual is None or f"{actual:.{decimals}f}" != f"{float(shown):.{decimals}f}":
                problems.append(f"{key}: README {field} {shown}, snapshot "
                                f"{'none' if actual is None else f'{actual:.{decimals}f}'}")
    return problems
