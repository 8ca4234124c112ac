"""Utilities that know nothing of GANs: options object, errors, run directories, logging."""

from dnnlib.easydict import EasyDict
from dnnlib.errors import UserError

__all__ = ["EasyDict", "UserError"]
