"""Datasets, batched augmentation and the input pipeline (see docs/ARCHITECTURE.md, "Data")."""

from cnnzoo.data.augment import Augment, build_augment, pca_basis, tta_views
from cnnzoo.data.datasets import DATASETS, ArrayDataset, load_dataset
from cnnzoo.data.folder import ImageFolderDataset
from cnnzoo.data.images import IMAGENET_EVAL, Preprocess, read_image
from cnnzoo.data.loader import build_loader, shard_order
from cnnzoo.data.sources import SOURCES, cache_dir, resolve

__all__ = [
    "DATASETS", "IMAGENET_EVAL", "SOURCES", "ArrayDataset", "Augment", "ImageFolderDataset",
    "Preprocess", "build_augment", "build_loader", "cache_dir", "load_dataset", "pca_basis",
    "read_image", "resolve", "shard_order", "tta_views",
]
