"""Plots and the campaign report."""

from coscope.report.campaign import write_report
from coscope.report.maps import write_learning_curve, write_maps

__all__ = ["write_learning_curve", "write_maps", "write_report"]
