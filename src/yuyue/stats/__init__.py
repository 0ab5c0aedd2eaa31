"""Figures and exports (rule G18)."""
