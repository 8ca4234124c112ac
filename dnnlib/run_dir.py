"""Run directories results/NNNNN-<desc>/, numbered like StyleGAN2's."""

import os
import re


def next_run_dir(outdir, desc):
    """Create and return outdir/NNNNN-desc with NNNNN one above the largest existing id."""
    os.makedirs(outdir, exist_ok=True)
    ids = [int(m.group(1)) for name in os.listdir(outdir) if (m := re.match(r"^(\d+)-", name))]
    run_id = max(ids, default=-1) + 1
    safe_desc = re.sub(r"[^A-Za-z0-9_.+-]", "_", desc)
    path = os.path.join(outdir, f"{run_id:05d}-{safe_desc}")
    os.makedirs(path, exist_ok=False)
    return path
