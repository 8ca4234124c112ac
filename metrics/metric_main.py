"""Registry of named metrics and the entry points the training loop and run_metrics.py call.

calc_metric(name, G, dataset_dir, ...) evaluates one metric; calc_metrics(names, ...) several, sharing feature
networks, real statistics and fake features between them. Results are EasyDict(metric, results (name -> float),
info (how it was computed: feature network, sizes, kernel used ...), total_time, ...), appended as one JSON line
to <run_dir>/metric-<name>.jsonl and logged to TensorBoard when a tf.summary writer is given.
run_metrics(opts) is the command behind run_metrics.py: evaluate, print the table, write the JSON file.
"""

import json
import os
import time

from dnnlib import EasyDict
from dnnlib.errors import InputError
from dnnlib.fileutil import check_output_file, write_output_file
from dnnlib.tb_log import scalar as tb_scalar
from metrics import fid_3d, fid_slices, kid, memorization, metric_utils, mmd, ms_ssim, precision_recall


class MetricOptionError(InputError):
    """An evaluation option that cannot work, found before any volume is generated. `option` is the keyword at
    fault (metrics, feature_weights or feature_network), so each front end can name its own flag."""

    def __init__(self, option, message):
        super().__init__(message)
        self.option = option


# name -> EasyDict(fn, description, feature_network): feature_network is the kind of network the metric needs
# ("inception", "3d" as in metric_utils.feature_network, or None), checked by preflight before any work.
METRICS = {}


def register_metric(name, fn, description, feature_network=None):
    METRICS[name] = EasyDict(fn=fn, description=description, feature_network=feature_network)


register_metric("fid_slices", fid_slices.fid_slices, "FID of slice features (standard FID Inception), per axis and "
                "mean", "inception")
register_metric("kid", kid.kid, "KID (StyleGAN2-ADA) of the slice features of fid_slices, per axis and mean",
                "inception")
register_metric("pr_slices", precision_recall.pr_slices, "precision/recall (k=3) of the slice features of fid_slices",
                "inception")
register_metric("fid_3d", fid_3d.fid_3d, "FID of a user-given 3D network's features", "3d")
register_metric("kid_3d", kid.kid_3d, "KID of a user-given 3D network's features", "3d")
register_metric("pr_3d", precision_recall.pr_3d, "precision/recall (k=3) of a user-given 3D network's features", "3d")
register_metric("mmd", mmd.mmd_metric, "the three voxel MMD^2 variants below, in one pass")
register_metric("mmd_linear_batch8", mmd.mmd_linear_batch8_metric, "Kwon et al./original: biased linear, batches of 8")
register_metric("mmd_linear_unbiased", mmd.mmd_linear_unbiased_metric, "MONAI MMDMetric: unbiased linear kernel")
register_metric("mmd_gaussian_median", mmd.mmd_gaussian_median_metric, "Gaussian kernel, median bandwidth, voxels")
register_metric("mmd_gaussian_median_3d", mmd.mmd_gaussian_median_3d_metric, "Gaussian MMD^2 on 3D features (HA-GAN)",
                "3d")
register_metric("ms_ssim", ms_ssim.ms_ssim_metric, "MS-SSIM (MONAI convention) of fake pairs and real pairs")
register_metric("ms_ssim_legacy_kwon", ms_ssim.ms_ssim_legacy_kwon_metric, "legacy MS-SSIM of Kwon et al.")
register_metric("memorization", memorization.memorization, "memorisation audit against training and held-out data: "
                "C_T, authenticity, copy fraction; voxel correlation distance")
register_metric("memorization_slices", memorization.memorization_slices, "the memorisation audit on the slice FID "
                "features", "inception")
register_metric("memorization_3d", memorization.memorization_3d, "the memorisation audit on a user-given 3D "
                "network's features", "3d")


def list_metrics():
    return sorted(METRICS)


def describe_metrics():
    """One line per metric: name and what it computes."""
    width = max(len(n) for n in METRICS)
    return "\n".join(f"{n.ljust(width)}  {METRICS[n].description}" for n in list_metrics())


def check_metric_names(names):
    """MetricOptionError (option 'metrics') unless `names` is a non-empty list of registered metrics."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise MetricOptionError("metrics", f"unknown metric(s) {', '.join(unknown)}; "
                                           f"choose from {', '.join(list_metrics())}")
    if not names:
        raise MetricOptionError("metrics", f"no metric given; choose from {', '.join(list_metrics())}")


def preflight(names, feature_weights=None, feature_network=None, heldout=None, **_):
    """Fail before generating anything when a metric name is unknown or a metric lacks its feature network or
    its held-out data."""
    from metrics import feature_networks

    check_metric_names(list(names))
    audits = [n for n in names if n in memorization.METRIC_NAMES]
    if audits and heldout is None:
        verb = "needs" if len(audits) == 1 else "need"
        raise MetricOptionError("heldout", f"{', '.join(audits)} {verb} a held-out split of the training data's "
                                           "population to judge the samples against: give the held-out dataset")
    needs = {METRICS[n].feature_network for n in names}
    if "inception" in needs:
        try:
            feature_networks.check_slice_network(feature_weights)
        except (ValueError, OSError) as e:
            raise MetricOptionError("feature_weights", str(e)) from None
    wanted = [n for n in names if METRICS[n].feature_network == "3d"]
    if wanted and not feature_network:
        verb = "needs" if len(wanted) == 1 else "need"
        raise MetricOptionError("feature_network", f"{', '.join(wanted)} {verb} a 3D feature network (a Keras "
                                                   ".keras/.h5 model or SavedModel directory) and usually its "
                                                   "feature layer")


def make_options(G, dataset_dir, num=100, batch=4, feature_weights=None, feature_network=None, feature_layer=None,
                 feature_input="minus_one_one", slice_step=None, inception_size=299, kernel_size=11, seed=0,
                 psi=1.0, noise_mode="random", cache_dir=None, heldout=None, report_dir=None, cells=None):
    """The options every metric reads. dataset_dir: a dataset directory or a tf.data.Dataset of reals.
    The memorisation audit (metrics/memorization.py) also reads heldout (a dataset directory or tf.data.Dataset
    of the held-out split), report_dir (where its report folders go, or None) and cells (k-means cells of its
    C_T, None = automatic)."""
    if int(num) < 2:
        raise InputError(f"need at least 2 volumes to evaluate, got num={num}")
    if int(batch) < 1:
        raise InputError(f"batch size must be at least 1, got {batch}")
    if dataset_dir is None:
        raise TypeError("no reals: give a dataset directory or a tf.data.Dataset")
    if isinstance(dataset_dir, str | os.PathLike) and not os.path.isdir(dataset_dir):
        raise FileNotFoundError(f"{dataset_dir}: no such dataset directory")
    if isinstance(heldout, str | os.PathLike) and not os.path.isdir(heldout):
        raise FileNotFoundError(f"{heldout}: no such held-out dataset directory")
    G = metric_utils.resolve_generator(G)
    metric_utils.check_grids(G, dataset_dir)
    return EasyDict(
        G=G, reals=dataset_dir, num=int(num), batch=int(batch),
        feature_weights=feature_weights, feature_network=feature_network, feature_layer=feature_layer,
        feature_input=feature_input, slice_step=slice_step, inception_size=int(inception_size),
        kernel_size=int(kernel_size), seed=int(seed), psi=float(psi), noise_mode=noise_mode,
        cache_dir=cache_dir, dataset_key=metric_utils.dataset_key(dataset_dir), session={}, cache_hits=[], info={},
        heldout=heldout, report_dir=report_dir, cells=cells)


def evaluate_metric(name, opts):
    """Evaluate one registered metric with prepared options (sharing opts.session with other metrics)."""
    check_metric_names([name])
    opts.info = {}
    start = time.time()
    results = METRICS[name].fn(opts)
    total = time.time() - start
    settings = {k: opts[k] for k in ("num", "batch", "seed", "psi", "noise_mode")}
    return EasyDict(metric=name, results={k: float(v) for k, v in results.items()}, info=dict(opts.info),
                    num=opts.num, options=settings, total_time=total, total_time_str=f"{total:.1f}s",
                    timestamp=time.time())


def calc_metrics(names, G=None, dataset_dir=None, run_dir=None, tb_writer=None, step=None, snapshot=None,
                 network_source=None, kimg=None, **kwargs):
    """Several metrics sharing one session. G, dataset_dir: see calc_metric; step (training batch index), kimg,
    snapshot: where in training G is, for the JSON lines; other keywords: see make_options."""
    preflight(list(names), **kwargs)
    opts = make_options(G, dataset_dir, **kwargs)
    if network_source is None:
        network_source = getattr(G, "source", None)
    out = []
    for name in names:
        result = evaluate_metric(name, opts)
        report_metric(result, run_dir=run_dir, tb_writer=tb_writer, step=step, snapshot=snapshot,
                      network=network_source, kimg=kimg)
        out.append(result)
    return out


def calc_metric(name, G=None, dataset_dir=None, num=100, batch=4, feature_weights=None, run_dir=None, **kwargs):
    """One metric. G: a LoadedNetwork or a Generator (front ends load networks from disk).
    dataset_dir: a dataset directory or a tf.data.Dataset of reals. Other keywords: see make_options."""
    return calc_metrics([name], G=G, dataset_dir=dataset_dir, num=num, batch=batch, feature_weights=feature_weights,
                        run_dir=run_dir, **kwargs)[0]


def report_metric(result, run_dir=None, tb_writer=None, step=None, snapshot=None, network=None, kimg=None):
    """Append the result as a JSON line to <run_dir>/metric-<name>.jsonl (lines are only ever added, each with the
    training step, kimg and snapshot it measured); log scalars to TensorBoard."""
    if run_dir is not None:
        line = dict(result, snapshot=snapshot, network=network, step=step, kimg=kimg)
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, f"metric-{result.metric}.jsonl"), "a") as f:
            f.write(json.dumps(line, sort_keys=True, default=str) + "\n")
    if tb_writer is not None:
        with tb_writer.as_default():
            for k, v in result.results.items():
                tb_scalar(f"Metrics/{k}", v, step if step is not None else 0)
        tb_writer.flush()


def network_label(network_id):
    """name@sha256[:12] of the feature network behind a result ('' for metrics without one)."""
    if not network_id:
        return ""
    sha = network_id.get("weights_sha256")
    return f"{network_id.get('name')}@{sha[:12]}" if sha else str(network_id.get("name"))


def format_table(results):
    """Plain-text table of a list of results: metric, value name, value, feature network, time."""
    rows = [("metric", "result", "value", "network", "time")]
    for r in results:
        label = network_label(r.info.get("feature_network"))
        for k, v in r.results.items():
            rows.append((r.metric, k, f"{v:.6g}", label, r.total_time_str))
        for k in r.info.get("left_out") or {}:
            rows.append((r.metric, k, "left out", label, r.total_time_str))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        if r.info.get("comparable") is False:
            lines.append(f"note: {r.metric}: random feature weights, values NOT comparable")
        elif (r.info.get("feature_network") or {}).get("standard") is False:
            lines.append(f"note: {r.metric}: {network_label(r.info['feature_network'])} is not the standard FID "
                         "Inception: values NOT comparable with published FIDs")
    lines += ms_ssim_notes(results)
    for r in results:
        lines += [f"note: {r.metric}: {k} left out: {why}" for k, why in (r.info.get("left_out") or {}).items()]
    return "\n".join(lines)


def ms_ssim_notes(results):
    """A note per MS-SSIM result computed with another window or fewer scales than the standard (11 voxels, 5
    scales): a value means little without them, so they are printed beside it."""
    standard = (11, len(ms_ssim.MS_SSIM_WEIGHTS))
    notes = []
    for r in results:
        used = (r.info.get("kernel_size"), r.info.get("num_scales"))
        if None not in used and used != standard:
            notes.append(f"note: {r.metric}: Gaussian window {used[0]} voxels, {used[1]} of {standard[1]} scales "
                         f"(standard {standard[0]} and {standard[1]}); compare only at equal window and scales")
    return notes


# make_options keywords that run_metrics passes through (and records in its JSON file).
EVALUATION_KEYS = ("num", "batch", "feature_weights", "feature_network", "feature_layer", "feature_input",
                   "slice_step", "inception_size", "kernel_size", "seed", "psi", "noise_mode", "cache_dir", "heldout",
                   "report_dir", "cells")


def run_metrics(opts):
    """The command behind run_metrics.py: evaluate opts.metrics on the loaded opts.network against opts.data, print
    the table, write opts.json if given and append to the run's metric-<name>.jsonl files.

    opts: EasyDict(network (a loaded generator: LoadedNetwork or Generator; the front end loads it), data (dataset
    directory or tf.data.Dataset), metrics (names), network_name (what the user gave, for the JSON file), run_dir
    (the run folder whose metric logs to append to, or None), json (path or None), overwrite (may opts.json
    replace a file written here before), inputs (paths the JSON must not touch; default data), + any of
    EVALUATION_KEYS). Returns the list of results.
    """
    network, run_dir = opts.network, opts.get("run_dir")
    network_name = opts.get("network_name") or getattr(network, "source", None)
    json_inputs = opts.get("inputs") or [p for p in (network_name, opts.data) if isinstance(p, (str, os.PathLike))]
    if opts.get("json"):  # refused before any work; checked again when the file is written
        check_output_file(opts.json, json_inputs, bool(opts.get("overwrite", False)))
    names = list(opts.metrics)
    kwargs = {k: opts[k] for k in EVALUATION_KEYS if k in opts}
    position = checkpoint_position(network.source) if run_dir else {}
    results = calc_metrics(names, G=network, dataset_dir=opts.data, run_dir=run_dir,
                           network_source=network_name, **position, **kwargs)
    print(format_table(results))
    if opts.get("json"):
        write_output_file(opts.json, json.dumps({"network": str(network_name), "data": str(opts.data),
                                                 "options": kwargs, "results": results},
                                                indent=2, sort_keys=True, default=str) + "\n",
                          overwrite=bool(opts.get("overwrite", False)), inputs=json_inputs)
        print(f"wrote {opts.json}")
    if run_dir:
        for name in names:
            print(f"appended to {os.path.join(run_dir, f'metric-{name}.jsonl')}")
    return results


def check_options(opts):
    """Fail before the network is loaded when a metric name or an option it needs is wrong (MetricOptionError)."""
    preflight(list(opts.metrics), **{k: opts[k] for k in EVALUATION_KEYS if k in opts})


def checkpoint_position(prefix):
    """{'step', 'kimg'} of a training checkpoint prefix (its batch index and images seen), {} for anything else
    (a SavedModel, a checkpoint without the training state)."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(os.fspath(prefix))
        step = int(reader.get_tensor("state/batch_idx/.ATTRIBUTES/VARIABLE_VALUE"))
        nimg = int(reader.get_tensor("state/cur_nimg/.ATTRIBUTES/VARIABLE_VALUE"))
    except (ValueError, OSError, KeyError, tf.errors.OpError):
        return {}
    return {"step": step, "kimg": nimg / 1000}
