"""A document written twice: a self-contained HTML page (PNGs embedded as base64, no
external URL) and Markdown next to its PNG files. Used by `cnnlab explain` and `report`.

    >>> doc = Document("Run lecture-1")
    >>> doc.heading("Curves"); doc.image("curves.png", png_bytes, "accuracy and loss")
    >>> doc.table(["class", "precision"], [["0", "0.99"]])
    >>> doc.write(folder, "report")        # report.html, report.md, curves.png
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

from ..io import atomic_write

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1150px;color:#222;padding:0 1em}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f0f0f0}
td:first-child{text-align:left}figure{margin:1em 0}img{max-width:100%;border:1px solid #eee}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:12px}
.finding{border-left:4px solid #d62728;padding:.2em .8em;margin:.6em 0;background:#fff6f6}
.ok{border-left:4px solid #2ca02c;padding:.2em .8em;background:#f5fff5}
small{color:#666}"""


class Document:
    def __init__(self, title: str):
        self.title = title
        self.blocks: list[tuple] = []
        self.images: dict[str, bytes] = {}

    def heading(self, text: str, level: int = 2):
        self.blocks.append(("h", level, text))

    def text(self, text: str):
        self.blocks.append(("p", text))

    def items(self, items):
        self.blocks.append(("ul", list(items)))

    def pre(self, text: str):
        self.blocks.append(("pre", text))

    def table(self, header, rows):
        self.blocks.append(("table", list(header), [list(map(str, r)) for r in rows]))

    def finding(self, title: str, text: str, ok: bool = False):
        self.blocks.append(("finding", title, text, ok))

    def image(self, name: str, png: bytes, caption: str):
        self.images[name] = png
        self.blocks.append(("img", name, caption))

    # -- rendering -------------------------------------------------------------------------
    def html(self) -> str:
        e = html.escape
        out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(self.title)}"
               f"</title><style>{CSS}</style></head><body><h1>{e(self.title)}</h1>"]
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                out.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
            elif kind == "p":
                out.append(f"<p>{e(b[1])}</p>")
            elif kind == "ul":
                out.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in b[1]) + "</ul>")
            elif kind == "pre":
                out.append(f"<pre>{e(b[1])}</pre>")
            elif kind == "table":
                head = "".join(f"<th>{e(h)}</th>" for h in b[1])
                rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>"
                               for r in b[2])
                out.append(f"<table><tr>{head}</tr>{rows}</table>")
            elif kind == "finding":
                cls = "ok" if b[3] else "finding"
                out.append(f"<div class='{cls}'><b>{e(b[1])}</b><br>{e(b[2])}</div>")
            elif kind == "img":
                data = base64.b64encode(self.images[b[1]]).decode("ascii")
                out.append(f"<figure><img alt='{e(b[2])}' src='data:image/png;base64,{data}'>"
                           f"<figcaption><small>{e(b[2])}</small></figcaption></figure>")
        out.append("</body></html>")
        return "\n".join(out) + "\n"

    def markdown(self) -> str:
        def cell(t):
            return str(t).replace("|", "\\|").replace("\n", " ")
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                out += ["#" * b[1] + " " + b[2], ""]
            elif kind == "p":
                out += [b[1], ""]
            elif kind == "ul":
                out += [f"- {i}" for i in b[1]] + [""]
            elif kind == "pre":
                out += ["```", b[1], "```", ""]
            elif kind == "table":
                out += ["| " + " | ".join(map(cell, b[1])) + " |", "|" + "---|" * len(b[1])]
                out += ["| " + " | ".join(map(cell, r)) + " |" for r in b[2]] + [""]
            elif kind == "finding":
                out += [f"- **{b[1]}**: {b[2]}", ""]
            elif kind == "img":
                out += [f"![{b[2]}]({b[1]})", ""]
        return "\n".join(out) + "\n"

    def write(self, folder, stem: str, markdown: bool = True) -> dict:
        """The PNGs, then STEM.md and STEM.html (each file atomic, the page last: it only
        exists once everything it shows does); returns their paths."""
        folder = Path(folder)
        paths = {"pngs": []}
        for name, png in self.images.items():
            atomic_write(folder / name, png)
            paths["pngs"].append(folder / name)
        if markdown:
            atomic_write(folder / f"{stem}.md", self.markdown())
            paths["markdown"] = folder / f"{stem}.md"
        atomic_write(folder / f"{stem}.html", self.html())
        paths["html"] = folder / f"{stem}.html"
        return paths
