"""The report page: sections in order, tables, figures embedded as PNG (also written to report/figures/)."""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

CSS = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.88em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}h2{border-bottom:2px solid #ddd;
margin-top:2em}.note{color:#555;font-size:.9em}img{max-width:100%}pre{background:#f7f7f7;padding:1em;overflow:auto}
.left td,.left th{text-align:left}
nav{background:#fafafa;border:1px solid #ddd;padding:.5em 1em}nav a{margin-right:1em}.missing{color:#a33}"""
MODEL_COLOURS = {"clinical": "#1f77b4", "radiomics": "#ff7f0e", "nomogram": "#2ca02c"}


@dataclass
class Report:
    figures_dir: Path | None
    sections: list[tuple[str, str, str]] = field(default_factory=list)  # (anchor, title, html)

    def add(self, anchor: str, title: str, body: str) -> None:
        self.sections.append((anchor, title, body))

    def has(self, anchor: str) -> bool:
        return self.anchor(anchor) is not None

    def anchor(self, prefix: str) -> str | None:
        """The first section whose anchor is `prefix` or starts with `prefix-`."""
        return next((a for a, _, _ in self.sections if a == prefix or a.startswith(prefix + "-")), None)

    def figure(self, fig, name: str, alt: str) -> str:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
        plt.close(fig)
        if self.figures_dir is not None:
            self.figures_dir.mkdir(parents=True, exist_ok=True)
            (self.figures_dir / f"{name}.png").write_bytes(buf.getvalue())
        return png_tag(buf.getvalue(), alt)

    def html(self, title: str) -> str:
        nav = "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t, _ in self.sections)
        body = "\n".join(f'<section id="{a}"><h2>{html.escape(t)}</h2>{b}</section>' for a, t, b in self.sections)
        title = html.escape(title)
        return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>mcrad: {title}</title>"
                f"<style>{CSS}</style></head><body><h1>mcrad multicentre validation report: {title}</h1>"
                f"<nav>{nav}</nav>{body}</body></html>\n")


def png_tag(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def table(df: pd.DataFrame, digits: int = 3) -> str:
    return df.to_html(index=False, float_format=lambda x: f"{x:.{digits}f}", na_rep="", border=0, escape=True)
