"""Data: images in and out, image folders, the embedded photo set, the photo-set builder.

- :mod:`swycc.data.images`: load/save, folder scans, resizing and the paper's crops;
- :mod:`swycc.data.folder`: ``ImageFolderDataset`` and ``build_dataset``;
- :mod:`swycc.data.embedded`: the photos that ship inside scikit-image and scikit-learn;
- :mod:`swycc.data.order`: the resumable sampler and loader;
- :mod:`swycc.data.photoset`: real photos from Debian's desktop-background packages;
- :mod:`swycc.data.idx_folder`: IDX files (Fashion-MNIST) to a class-labelled folder.
"""

from swycc.data.folder import ImageFolderDataset, build_dataset
from swycc.data.images import (IMAGE_EXTS, ImageError, center_crop_square, describe_skips,
                               image_size, list_images, load_image, save_image)

__all__ = ["IMAGE_EXTS", "ImageError", "ImageFolderDataset", "build_dataset",
           "center_crop_square", "describe_skips", "image_size", "list_images", "load_image",
           "save_image"]
