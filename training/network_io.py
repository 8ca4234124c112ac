"""The one network loader: run directory, checkpoint prefix or exported SavedModel -> Generator + geometry.

Nothing is unpickled: the architecture is rebuilt from JSON kwargs (Generator(**G_kwargs)) and the
weights are restored from a tf.train checkpoint, so loading a file never executes code from it.
"""

import os
import warnings

import numpy as np
import tensorflow as tf

from dnnlib import EasyDict
from dnnlib.errors import InputError
from dnnlib.fileutil import atomic_output_dir
from training import pretrained, run_files
from training.checkpoints import restore_first_readable

GENERATOR_JSON = "generator.json"


class LoadedNetwork:
    """G: networks.Generator with the EMA weights; geometry: dict (shape, spacing, affine, orientation,
    mirror_axis); options: training options or {}; source: what was loaded, for logs."""

    def __init__(self, G, geometry, options, source):
        self.G, self.geometry, self.options, self.source = G, geometry, options, source

    def __repr__(self):
        return f"LoadedNetwork(source={self.source!r}, img_shape={self.G.img_shape})"


# ----------------------------------------------------------------------------------------------
# Geometry.


def default_geometry(shape, spacing=None):
    """RAS geometry with the volume centred on the origin, for networks whose dataset manifest is gone."""
    spacing = [1.0, 1.0, 1.0] if spacing is None else [float(s) for s in spacing]
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-(n - 1) * s / 2.0 for n, s in zip(shape, spacing, strict=True)]
    return dict(shape=[int(n) for n in shape], spacing=spacing, affine=affine.tolist(), orientation="RAS",
                mirror_axis=0)


def geometry_from_manifest(manifest):
    keys = ("shape", "spacing", "affine", "orientation", "mirror_axis")
    return {k: manifest[k] for k in keys if k in manifest}


# ----------------------------------------------------------------------------------------------
# Building and restoring.


def _generator_kwargs(opts, manifest, source):
    """Generator kwargs from training options; c_dim / img_channels filled from the manifest if absent."""
    if "G_kwargs" not in opts:
        raise InputError(f"{source}: training_options.json has no 'G_kwargs'; cannot rebuild the generator")
    kw = dict(opts["G_kwargs"])
    if "c_dim" not in kw:
        labels = (manifest or {}).get("labels") or {}
        kw["c_dim"] = int(opts.get("c_dim", labels.get("c_dim", 0) if isinstance(labels, dict) else 0))
    if "img_channels" not in kw:
        kw["img_channels"] = int(opts.get("img_channels", (manifest or {}).get("channels", 1)))
    return kw


def _build_generator(kwargs, source):
    from training.networks import Generator

    try:
        return Generator(**kwargs)
    except (TypeError, ValueError) as e:
        raise InputError(f"{source}: generator settings do not build a network: {e}") from None


def _restore(checkpoint, candidates, source):
    """Read the first readable of the candidate prefixes (the one checkpoint rule); return the prefix read."""

    try:
        found, errors = restore_first_readable(checkpoint, candidates, partial=True)
    except ValueError as e:
        raise InputError(f"{source}: checkpoint does not hold this generator's weights ({e})") from None
    if errors:
        warnings.warn(f"checkpoint {errors[0]} is unreadable; loaded {found} instead", stacklevel=3)
    return found


def _is_saved_model(path):
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb"))


def _load_checkpoint(candidates, run_dir):
    opts = run_files.read_json(os.path.join(run_dir, run_files.OPTIONS_NAME), "training options")
    manifest = run_files.load_manifest_copy(run_dir)
    G = _build_generator(_generator_kwargs(opts, manifest, run_dir), run_dir)
    prefix = _restore(tf.train.Checkpoint(G_ema=G), candidates, candidates[0])
    if manifest is not None:
        geometry = geometry_from_manifest(manifest)
    else:
        geometry = default_geometry(G.img_shape, opts.get("spacing_mm"))
    return LoadedNetwork(G, geometry, opts, prefix)


def _load_saved_model(export_dir):
    meta = run_files.read_json(os.path.join(export_dir, "assets", GENERATOR_JSON), "generator description")
    if "G_kwargs" not in meta:
        raise InputError(f"{export_dir}: assets/{GENERATOR_JSON} has no 'G_kwargs'")
    G = _build_generator(dict(meta["G_kwargs"]), export_dir)
    # A SavedModel's variables are a checkpoint rooted at the exported module (the Generator itself).
    _restore(tf.train.Checkpoint(root=G), [os.path.join(export_dir, "variables", "variables")], export_dir)
    geometry = dict(meta.get("geometry") or default_geometry(G.img_shape))
    return LoadedNetwork(G, geometry, dict(meta.get("options") or {}), export_dir)


def load_generator(path):
    """Load the EMA generator from a run directory, a checkpoint prefix, an exported SavedModel or a shipped name."""
    path = pretrained.resolve(path)
    expected = ("expected a run directory (with training_options.json and checkpoints/), a checkpoint prefix "
                "(<run>/checkpoints/ckpt-N), a SavedModel directory written by export_generator or a shipped "
                f"network ({', '.join(pretrained.names()) or 'none shipped'})")
    if _is_saved_model(path):
        return _load_saved_model(path)
    if _is_saved_model(os.path.join(path, "generator")):  # a snapshot directory snapshots/NNNNNN/
        return _load_saved_model(os.path.join(path, "generator"))
    found = run_files.checkpoints_to_load(path)
    if found is not None:
        run_dir, candidates = found
        return _load_checkpoint(candidates, run_dir)
    if os.path.isdir(path) and os.path.isdir(run_files.checkpoints_dir(path)):
        raise FileNotFoundError(f"{path}: has checkpoints/ but no training_options.json; {expected}")
    if not os.path.exists(path) and not os.path.exists(path + ".index"):
        raise FileNotFoundError(f"{path}: no such file or directory; {expected}")
    raise InputError(f"{path}: not a network; {expected}")


# ----------------------------------------------------------------------------------------------
# Export.


def _serving_fn(G):
    z_sig = tf.TensorSpec([None, G.z_dim], tf.float32, name="z")
    c_sig = tf.TensorSpec([None, G.c_dim], tf.float32, name="c")
    psi_sig = tf.TensorSpec([], tf.float32, name="psi")

    @tf.function(input_signature=[z_sig, c_sig, psi_sig], autograph=False)
    def serve(z, c, psi):
        # 'const' noise: a served generator is deterministic in (z, c, psi). Traced inside tf.saved_model.save,
        # so the FIR ops pick TensorFlow ops, not the C++ kernel (dnnlib/ops/upfirdn_3d.py).
        img = G(z, c if G.c_dim > 0 else None, psi=psi, noise_mode="const")
        return {"volume": img}

    return serve


def export_generator(G, geometry, export_dir, overwrite=False, options=None):
    """Write G as a SavedModel (signature serving_default(z, c, psi) -> {'volume'}) plus
    assets/generator.json {"G_kwargs", "geometry"}; atomic: nothing appears under export_dir on failure."""
    meta = {"G_kwargs": G.get_config(), "geometry": geometry}
    if options is not None:
        meta["options"] = options
    text = EasyDict.from_obj(meta).to_json()
    with atomic_output_dir(export_dir, overwrite=overwrite) as tmp:
        # Serving needs no gradients, so the ops' custom gradient functions are left out of the SavedModel.
        tf.saved_model.save(G, tmp, signatures={"serving_default": _serving_fn(G)},
                            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
        os.makedirs(os.path.join(tmp, "assets"), exist_ok=True)
        with open(os.path.join(tmp, "assets", GENERATOR_JSON), "w") as f:
            f.write(text + "\n")
    return export_dir
