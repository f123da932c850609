"""Vega-Lite chart specs: ``heatmap`` (heatmaps, panels, liquidation map) and ``accuracy``."""
