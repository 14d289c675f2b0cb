"""The evaluation report: one self-contained HTML page (figures embedded as base64 PNGs), so it
opens anywhere — from the artifact directory, an S3 browser or KFP's HTML viewer."""

import base64
import html
import json
from pathlib import Path


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def write_report(
    path: Path,
    title: str,
    metrics: dict[str, float],
    per_class: dict[str, float | None],
    figures: list[tuple[Path, str]],
    lineage_text: str,
    params: dict,
) -> None:
    """Headline metrics, a per-class table, the figures, the lineage and the params."""
    head = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{v:.4f}</td></tr>" for k, v in metrics.items()
    )
    classes = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{'—' if v is None else f'{100 * v:.1f}'}</td></tr>"
        for name, v in per_class.items()
    )
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 2px 8px; text-align: left; }}
img {{ max-width: 100%; }} figure {{ margin: 1.5em 0; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<h2>Metrics</h2><table>{head}</table>
<h2>IoU per class (%)</h2><table><tr><th>class</th><th>IoU</th></tr>{classes}</table>
{"".join(_figure(p, c) for p, c in figures)}
<h2>Lineage</h2><pre>{html.escape(lineage_text)}</pre>
<h2>Params</h2><pre>{html.escape(json.dumps(params, indent=1))}</pre>
</body></html>
"""
    path.write_text(body)
