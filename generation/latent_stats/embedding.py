"""embed: project a dataset's volumes into the generator (W or W+, the projector's settings), one latent per volume
with its manifest row and covariates; and the reader of the folder it writes.

Resumable: the work goes into <outdir>.partial/ (marked as this project's, with the options that decide the
result); a volume counts as done when its row file is written, after its latent and projection. A rerun with
the same options skips the finished batches and projects the rest; the batches are fixed by the options (the
volumes in index order, `batch` at a time) and each batch starts from the same seed, so a resumed run gives the
latents an uninterrupted one gives. At the end everything moves into <outdir> at once and the .partial folder
goes. Another command's options on an existing .partial folder are refused (it is never mixed or deleted).

The embedding folder: latents.npy [N, num_ws, w_dim] (W is stored tiled, as the projector returns it),
embedding.json (network, data, indices, options, rows {index, name, covariates, mse}, covariate kinds),
projected/index00000.nii.gz (each projection, the volume's own affine), embedding.png (targets over projections,
the first volumes).
"""

import json
import os
import shutil

import numpy as np

from dnnlib import EasyDict
from dnnlib.errors import InputError
from dnnlib.fileutil import OUTPUT_MARKER, atomic_output_dir, atomic_write_text, check_output_dir

EMBEDDING_JSON = "embedding.json"
LATENTS = "latents.npy"
PICTURE_MAX = 8  # volumes shown in embedding.png
# The options that decide the latents: a .partial folder is resumed only under the same ones.
RESULT_KEYS = ("network", "data", "indices", "batch", "num_steps", "initial_learning_rate", "w_plus",
               "regularize_noise_weight", "initial_noise_factor", "w_avg_samples", "w_prior_weight", "loss",
               "ssim_weight", "seed")


def partial_dir(outdir):
    return os.path.abspath(outdir).rstrip(os.sep) + ".partial"


def _name(index):
    return f"index{int(index):05d}"


def check_grid(G, manifest, where, geometry=None):
    """ValueError when the network does not make volumes on the dataset's grid (shape, channels, spacing)."""
    want = tuple(int(s) for s in manifest.shape)
    have = tuple(int(s) for s in G.img_shape)
    if have != want or int(G.img_channels) != int(manifest.get("channels", 1)):
        raise InputError(f"{where}: the dataset's volumes are {list(want)} x {manifest.get('channels', 1)} channel(s), "
                         f"the network makes {list(have)} x {int(G.img_channels)}: a network and a dataset on "
                         "different grids cannot be compared; use the dataset the network was trained on (or one "
                         "made with the same preprocessing)")
    spacing = (geometry or {}).get("spacing")
    if spacing is not None and not np.allclose(np.asarray(spacing, float), np.asarray(manifest.spacing, float),
                                               rtol=1e-3):
        raise InputError(f"{where}: the dataset's spacing is {list(manifest.spacing)} mm, the network's "
                         f"{list(spacing)} mm: a network and a dataset on different grids cannot be compared")


def select_indices(manifest, data, indices):
    n = int(manifest.get("num_volumes") or 0)
    chosen = list(range(n)) if not indices else [int(i) for i in indices]
    bad = [i for i in chosen if not 0 <= i < n]
    if bad:
        raise InputError(f"{data} holds {n} volumes (indices 0-{n - 1}); no volumes {bad}")
    if len(set(chosen)) != len(chosen):
        raise InputError(f"indices {chosen}: each volume once")
    if not chosen:
        raise InputError(f"{data}: the dataset holds no volumes")
    return chosen


def _labels_of(data, manifest, chosen):
    """{index: label vector or None} of the chosen volumes (a pass over the records; labels only are kept)."""
    if not manifest.get("labels"):
        return {i: None for i in chosen}
    from volumes import records

    want, out = set(chosen), {}
    for ex in records.iterate_records(data, manifest):
        if ex.index in want:
            out[int(ex.index)] = np.asarray(ex.label, np.float32) if ex.label.size else None
    return out


def _open_partial(part, record):
    """Create the .partial folder, or check that an existing one is ours and was started with these options."""
    rec_path = os.path.join(part, "options.json")
    if os.path.lexists(part):
        if not os.path.isfile(os.path.join(part, OUTPUT_MARKER)) or not os.path.isfile(rec_path):
            raise InputError(f"{part} exists but is not an unfinished embedding of this project; it is never "
                             "touched: move it away or choose another output folder")
        with open(rec_path) as f:
            before = json.load(f)
        diff = sorted(k for k in RESULT_KEYS if before.get(k) != record.get(k))
        if diff:
            raise InputError(f"{part} is an unfinished embedding made with other options ({', '.join(diff)} differ); "
                             "rerun it with its own options to finish it, or remove it to start again")
        return True
    os.makedirs(os.path.join(part, "rows"))
    os.makedirs(os.path.join(part, "latents"))
    os.makedirs(os.path.join(part, "projected"))
    with open(os.path.join(part, OUTPUT_MARKER), "w") as f:
        json.dump({"writer": "stylegan3d-tf2", "pid": os.getpid()}, f)
    atomic_write_text(rec_path, json.dumps(record, indent=2) + "\n")
    return False


def _done(part, index):
    return os.path.isfile(os.path.join(part, "rows", _name(index) + ".json"))


def project_batch(G, targets, c, popts, w_stats, progress=None, progress_every=100):
    """One batch through the projector (the public Projector): its result (ws, volumes, curve)."""
    from generation.projector import Projector

    return Projector(G, np.stack([t.volume for t in targets]), c, popts, w_stats).run(progress, progress_every)


def embed(opts):
    """Project opts.data (opts.indices, default all) into opts.network; write opts.outdir. Returns its record.

    opts: network, data, indices, outdir, overwrite, batch, progress_every and the projector's options
    (num_steps, initial_learning_rate, w_plus, ...; generation.projector.default_options)."""
    from dnnlib.option_table import defaults
    from generation.latent_stats.cohort import covariate_kinds, volume_covariates
    from generation.latent_stats.options import EMBED_PROJECTOR_OPTIONS
    from generation.outputs import write_volume
    from generation.projection_targets import dataset_targets
    from generation.projector import default_options, w_statistics
    from training.network_io import load_generator
    from volumes.manifest import load_manifest, volume_affine
    from volumes.work_pool import Progress

    opts = EasyDict(opts)
    final = check_output_dir(opts.outdir, [opts.network, opts.data], bool(opts.get("overwrite", False)))
    manifest = load_manifest(opts.data)
    chosen = select_indices(manifest, opts.data, opts.get("indices"))
    net = load_generator(opts.network)
    G = net.G
    check_grid(G, manifest, f"{opts.network} and {opts.data}", net.geometry)
    kinds = covariate_kinds(manifest)
    labels = _labels_of(opts.data, manifest, chosen)
    # The projector's settings: embed's own defaults where they differ from the projector's (W:
    # generation.latent_stats.options), then what opts gives.
    embed_defaults = {k: v for k, v in defaults(EMBED_PROJECTOR_OPTIONS, by_key=True).items() if k in default_options()}
    popts = EasyDict({**embed_defaults, **{k: opts[k] for k in default_options() if k in opts}})
    settings = {**default_options(), **popts, "network": os.path.abspath(opts.network),
                "data": os.path.abspath(opts.data), "indices": chosen, "batch": int(opts.get("batch", 4))}
    record = {k: settings[k] for k in RESULT_KEYS}
    c = None
    if int(G.c_dim):
        # The W statistics only start the optimisation and scale its latent noise: the cohort's mean label.
        vecs = [v for v in labels.values() if v is not None]
        if not vecs:
            raise InputError(f"{opts.network} is conditional (c_dim = {int(G.c_dim)}) but {opts.data} has no labels")
        c = np.mean(vecs, axis=0)

    part = partial_dir(final)
    resumed = _open_partial(part, record)
    done = [i for i in chosen if _done(part, i)]
    if resumed:
        print(f"resuming {part}: {len(done)} of {len(chosen)} volumes already embedded")
    stats_path = os.path.join(part, "w_stats.npz")
    if os.path.isfile(stats_path):
        with np.load(stats_path) as z:
            w_stats = (z["w_avg"], float(z["w_std"]))
    else:
        print(f"W statistics from {record['w_avg_samples']} mapping samples")
        w_stats = w_statistics(G, int(record["w_avg_samples"]), c, int(record["seed"]))
        np.savez(stats_path + ".tmp.npz", w_avg=w_stats[0], w_std=w_stats[1])
        os.replace(stats_path + ".tmp.npz", stats_path)

    batch = record["batch"]
    chunks = [chosen[a : a + batch] for a in range(0, len(chosen), batch)]
    bar = Progress(len(chosen) - len(done), label="embed ")  # the volumes this run projects
    every = int(opts.get("progress_every", 100))
    for chunk in chunks:
        if all(_done(part, i) for i in chunk):
            continue
        targets = dataset_targets(opts.data, chunk)
        names = ", ".join(t.name for t in targets)

        def progress(row, names=names):
            print(f"[{names}] step {row['step']:>5}  loss {np.mean(row['loss']):.5f}  mse {np.mean(row['mse']):.5f}",
                  flush=True)

        res = project_batch(G, targets, c, popts, w_stats, progress, every)
        for k, (i, t) in enumerate(zip(chunk, targets, strict=True)):
            name = _name(i)
            np.save(os.path.join(part, "latents", name + ".tmp.npy"), res.ws[k])
            os.replace(os.path.join(part, "latents", name + ".tmp.npy"), os.path.join(part, "latents", name + ".npy"))
            write_volume(os.path.join(part, "projected", name + ".nii.gz"), res.volumes[k], volume_affine(manifest, i))
            mse = float(np.mean((res.volumes[k] - t.volume) ** 2))
            row = {"index": int(i), "name": name, "covariates": volume_covariates(manifest, i, labels.get(i)),
                   "mse": mse}
            atomic_write_text(os.path.join(part, "rows", name + ".json"), json.dumps(row) + "\n")
        bar.update(len(chunk))

    rows = []
    for i in chosen:
        with open(os.path.join(part, "rows", _name(i) + ".json")) as f:
            rows.append(json.load(f))
    latents = np.stack([np.load(os.path.join(part, "latents", _name(i) + ".npy")) for i in chosen])
    out_record = EasyDict(record, outdir=final, covariate_kinds=kinds, rows=rows, num_ws=int(G.num_ws),
                          w_dim=int(G.w_dim), geometry={k: manifest[k] for k in ("shape", "spacing", "affine")},
                          mean_mse=float(np.mean([r["mse"] for r in rows])))
    with atomic_output_dir(final, overwrite=bool(opts.get("overwrite", False)),
                           inputs=[opts.network, opts.data]) as out:
        np.save(os.path.join(out, LATENTS), latents)
        shutil.copytree(os.path.join(part, "projected"), os.path.join(out, "projected"))
        _picture(os.path.join(out, "embedding.png"), opts.data, chosen[:PICTURE_MAX],
                 [os.path.join(out, "projected", _name(i) + ".nii.gz") for i in chosen[:PICTURE_MAX]])
        out_record.save_json(os.path.join(out, EMBEDDING_JSON))
    shutil.rmtree(part, ignore_errors=True)
    print(f"embedded {len(chosen)} volumes into {final} (mean squared error {out_record.mean_mse:.5f} in [-1, 1])")
    return out_record


def _picture(path, data, indices, projected_files):
    """Targets (top row) over their projections (bottom row), axial mid-slices, in [0, 1]."""
    from generation.projection_targets import dataset_targets
    from volumes import visualize, volume_io
    from volumes.visualize import png_scale
    from volumes.volume_io import to_unit_range

    targets = [to_unit_range(t.volume)[..., 0] for t in dataset_targets(data, indices)]
    projs = [volume_io.read_volume(p)[0] for p in projected_files]
    visualize.grid_png(path, np.stack(targets + projs), 2, len(targets), axis=2, drange=(0, 1),
                       scale=png_scale(targets[0].shape))


def load_embedding(path):
    """EasyDict(record (embedding.json), latents [N, num_ws, w_dim], path) of an embed output folder."""
    path = os.fspath(path)
    rec_path = os.path.join(path, EMBEDDING_JSON)
    if not os.path.isfile(rec_path):
        raise FileNotFoundError(f"{path}: no {EMBEDDING_JSON}; give a folder written by run_latent.py embed")
    try:
        record = EasyDict.load_json(rec_path)
    except ValueError as e:
        raise InputError(f"{rec_path}: not valid JSON ({e})") from None
    latents = np.load(os.path.join(path, LATENTS), allow_pickle=False).astype(np.float32)
    if latents.ndim != 3 or len(latents) != len(record.rows):
        raise InputError(f"{path}/{LATENTS}: shape {list(latents.shape)} does not match its {len(record.rows)} rows")
    return EasyDict(record=record, latents=latents, path=path, record_path=rec_path)


def latent_vectors(emb):
    """[N, P] rows for statistics: W (the first row of the tiled ws) or the whole W+, flattened."""
    return emb.latents[:, 0] if not emb.record.w_plus else emb.latents.reshape(len(emb.latents), -1)


def to_ws(emb, vectors):
    """Rows of latent_vectors back to ws [M, num_ws, w_dim]."""
    v = np.asarray(vectors, np.float32)
    num_ws, w_dim = emb.latents.shape[1:]
    if emb.record.w_plus:
        return v.reshape(-1, num_ws, w_dim)
    return np.repeat(v.reshape(-1, 1, w_dim), num_ws, axis=1)
