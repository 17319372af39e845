"""Figures (plotly): one module per subject — heads, validation, tuning, analysis.

Functions return plotly figures; tests check their data, not their pixels.
"""
