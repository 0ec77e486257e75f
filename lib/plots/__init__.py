"""Plotting helpers, one module per topic (images, separation, theory)."""
