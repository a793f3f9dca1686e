"""Self-contained HTML reports: figures embedded as PNG, tables, short text (one file, no assets)."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io as _bytes_io
from pathlib import Path

import matplotlib.pyplot as plt

from widefield3d.io import atomic_output


class Report:
    """Collects sections and writes them as one HTML page."""

    def __init__(self, title: str):
        self.title = title
        self._parts: list[str] = []

    def heading(self, text: str) -> None:
        self._parts.append(f"<h2>{html.escape(text)}</h2>")

    def text(self, text: str) -> None:
        self._parts.append(f"<p>{html.escape(text)}</p>")

    def figure(self, fig: plt.Figure, caption: str, save_png: Path | None = None) -> None:
        """Embed a matplotlib figure (and optionally also save it as a PNG file); closes the figure."""
        buf = _bytes_io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        if save_png is not None:
            with atomic_output(save_png) as tmp:
                tmp.write_bytes(buf.getvalue())
        plt.close(fig)
        data = base64.b64encode(buf.getvalue()).decode()
        self._parts.append(
            f'<figure><img src="data:image/png;base64,{data}"/><figcaption>{html.escape(caption)}</figcaption></figure>'
        )

    def table(self, rows: list[dict], caption: str = "") -> None:
        if not rows:
            return
        cols = list(rows[0])
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows
        )
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self._parts.append(f"<table>{cap}<tr>{head}</tr>{body}</table>")

    def write(self, path: Path) -> Path:
        stamp = _dt.datetime.now().isoformat(timespec="seconds")
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
            "figure{margin:1em 0}img{max-width:100%}figcaption{color:#555;font-size:90%}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
            "</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1><p style='color:#777'>generated {stamp} by widefield3d</p>"
            + "\n".join(self._parts)
            + "</body></html>"
        )
        path = Path(path)
        with atomic_output(path) as tmp:
            tmp.write_text(page, encoding="utf-8")
        return path


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
