"""Classic image filtering (seed 001): kernels, padding, convolution, image files."""

from cnnzoo.imaging.filters import (
    KERNELS,
    PAD_MODES,
    PAIRS,
    ImageError,
    KernelError,
    filter2d,
    gaussian,
    get_kernel,
    gradient_magnitude,
    list_kernels,
    load_image,
    load_kernel_file,
    pad,
    reference_conv2d,
    save_image,
    to_display,
)

__all__ = [
    "KERNELS",
    "PAD_MODES",
    "PAIRS",
    "ImageError",
    "KernelError",
    "filter2d",
    "gaussian",
    "get_kernel",
    "gradient_magnitude",
    "list_kernels",
    "load_image",
    "load_kernel_file",
    "pad",
    "reference_conv2d",
    "save_image",
    "to_display",
]
