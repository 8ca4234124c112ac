"""Run directories results/NNNNN-<desc>/, numbered like StyleGAN2's."""

import os
import re

RUN_OPTIONS_NAME = "training_options.json"


def next_run_dir(outdir, desc):
    """Create and return outdir/NNNNN-desc with NNNNN one above the largest existing id."""
    os.makedirs(outdir, exist_ok=True)
    ids = [int(m.group(1)) for name in os.listdir(outdir) if (m := re.match(r"^(\d+)-", name))]
    run_id = max(ids, default=-1) + 1
    safe_desc = re.sub(r"[^A-Za-z0-9_.+-]", "_", desc)
    path = os.path.join(outdir, f"{run_id:05d}-{safe_desc}")
    os.makedirs(path, exist_ok=False)
    return path


def is_run_dir(path):
    """A training run's directory: it holds the run's options (written before the first step)."""
    if not isinstance(path, str | os.PathLike):
        return False
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, RUN_OPTIONS_NAME))
