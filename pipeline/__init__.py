"""liqmap: estimated crypto liquidation heatmaps as a static site.

Layers: ``registry`` (assets.yaml), ``store`` (DuckDB + sql/), ``model`` (pure
numpy level book), ``charts`` (Altair specs), ``site`` (jinja2 -> MkDocs).
"""

__version__ = "0.1.0"
