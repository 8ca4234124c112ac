"""Convert a TorchScript FID Inception file to our .npz of inception-2015-12-05 weights (needs torch).

What is read, and why only the published files: metrics/fid_torchscript.py.

    python -m metrics.convert_fid_torchscript default_1.pt fid_inception.npz
"""

import argparse
import os
import sys

from metrics import fid_inception_weights as fw


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="TorchScript file (inception-2015-12-05.pt or default_1.pt)")
    p.add_argument("dst", help="output .npz")
    args = p.parse_args(argv)
    try:
        info = fw.convert_torchscript(args.src, args.dst)
    except (ValueError, OSError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {os.path.abspath(args.dst)}: weights sha256 {info['weights_sha256']} "
          f"(from {info['file']}, sha256 {info['file_sha256']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
