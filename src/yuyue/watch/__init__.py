"""Watching the figures: abnormal-figure alerts, hoarding evidence, the quality report (G19, G15, G18)."""
