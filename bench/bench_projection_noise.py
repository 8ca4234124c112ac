"""What the projector's noise regulariser buys: PSNR of the projection with its own noise maps, and of its latent
re-synthesised with fresh random noise maps (the latent alone, as style mixing and interpolation use it).

  python -m bench.bench_projection_noise --network=demo --data=pretrained/demo/heldout --indices=0-5 \
      --num_steps=300 --variants=w,w_plus,w_plus:noise_reg_weight=0 --out=/tmp/projection_noise

Each variant is `w` or `w_plus`, optionally followed by `:flag=value;flag=value` (extra run_projector.py flags). Per
variant it runs run_projector.py, then `run_generator.py generate --projected_w=<its output> --noise_mode=random`,
and prints the median PSNR (dB, [0, 1], against target.nii.gz) of both. A projection whose noise maps soak up the
volume scores high with its own maps and low with fresh ones.
"""

import os
import subprocess
import sys

from absl import app, flags

from bench import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
flags.DEFINE_string("network", "demo", "The network (a shipped name, run dir or SavedModel).")
flags.DEFINE_string("data", "pretrained/demo/heldout", "Dataset of the target volumes.")
flags.DEFINE_string("indices", "0-5", "Dataset volumes to project.")
flags.DEFINE_integer("num_steps", 300, "Projection steps.")
flags.DEFINE_list("variants", ["w", "w_plus"], "w or w_plus, optionally :flag=value;... (run_projector.py flags).")
flags.DEFINE_string("out", None, "Output folder (one subfolder per variant).")


def _run(args):
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def _variant_flags(variant):
    space, _, extra = variant.partition(":")
    if space not in ("w", "w_plus"):
        raise app.UsageError(f"--variants: {variant!r} must start with w or w_plus")
    flags_ = ["--w_plus" if space == "w_plus" else "--now_plus"]
    flags_ += [f"--{kv}" for kv in extra.split(";") if kv] if extra else []
    return flags_


def measure(variant, out):
    """Median PSNR (own noise maps, fresh random noise maps) of one variant's projections."""
    import numpy as np

    from metrics.reconstruction import psnr
    from volumes import volume_io

    proj, fresh = os.path.join(out, "proj"), os.path.join(out, "fresh")
    _run(["run_projector.py", f"--network={FLAGS.network}", f"--data={FLAGS.data}", f"--indices={FLAGS.indices}",
          f"--num_steps={FLAGS.num_steps}", f"--outdir={proj}", "--progress_every=100000", *_variant_flags(variant)])
    _run(["run_generator.py", "generate", f"--network={FLAGS.network}", f"--projected_w={proj}",
          "--noise_mode=random", f"--outdir={fresh}"])
    own, new = [], []
    for name in sorted(d for d in os.listdir(proj) if os.path.isdir(os.path.join(proj, d))):
        target = volume_io.read_volume(os.path.join(proj, name, "target.nii.gz"))[0]
        own.append(psnr(target, volume_io.read_volume(os.path.join(proj, name, "projected.nii.gz"))[0], 1.0))
        new.append(psnr(target, volume_io.read_volume(os.path.join(fresh, f"{name}.nii.gz"))[0], 1.0))
    return dict(variant=variant, n=len(own), psnr_own_noise=float(np.median(own)),
                psnr_fresh_noise=float(np.median(new)))


def main(argv):
    if not FLAGS.out:
        raise app.UsageError("--out is required")
    print(common.machine_line())
    rows = []
    for i, variant in enumerate(FLAGS.variants):
        rows.append(measure(variant, os.path.join(FLAGS.out, f"{i:02d}")))
        print(rows[-1], flush=True)
    common.print_table([[r["variant"], r["n"], r["psnr_own_noise"], r["psnr_fresh_noise"]] for r in rows],
                       ["variant", "targets", "PSNR own noise (dB)", "PSNR fresh noise (dB)"], floatfmt="{:.2f}")


if __name__ == "__main__":
    app.run(main)
