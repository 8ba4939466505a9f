"""Pictures of a run: training curves, confusion matrices, conv filter grids."""

from cnnzoo.viz.filters import filter_grid_image, first_conv_weight, save_filter_grid
from cnnzoo.viz.plots import plot_confusion, plot_curves, read_metrics

__all__ = [
    "filter_grid_image",
    "first_conv_weight",
    "plot_confusion",
    "plot_curves",
    "read_metrics",
    "save_filter_grid",
]
