"""Output formats of a built table: markdown (default), latex, csv (numbers only: mean and std apart)."""
from __future__ import annotations

import pandas as pd

from meprop_cli.errors import UserError
from meprop_cli.table.build import Table

FORMATS = ("markdown", "latex", "csv")


def to_markdown(table: Table) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [line(table.headers), "| " + " | ".join("---" for _ in table.headers) + " |"]
    out += [line(row) for row in table.rows]
    out += ["", table.caption]
    if table.notes:
        out += ["", "Not in the table, or to know:", *[f"- {note}" for note in table.notes]]
    return "\n".join(out) + "\n"


LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "$": r"\$",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    text = "".join(LATEX_ESCAPES.get(ch, ch) for ch in text)
    return text.replace("±", r"$\pm$")


def to_latex(table: Table) -> str:
    """A booktabs tabular; the caption and notes follow as comments (they are for the author, not the page)."""
    spec = "l" * len(table.headers)
    out = [f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
           " & ".join(latex_escape(h) for h in table.headers) + r" \\", "\\midrule"]
    out += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in table.rows]
    out += ["\\bottomrule", "\\end{tabular}", f"% {table.caption}"]
    out += [f"% not in the table, or to know: {note}" for note in table.notes]
    return "\n".join(out) + "\n"


def to_csv(table: Table) -> str:
    return pd.DataFrame(table.numbers).to_csv(index=False)


def render(table: Table, fmt: str) -> str:
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt} is unknown; use one of {', '.join(FORMATS)}")
    return {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}[fmt](table)
