"""Suite-wide defaults, set before any test module imports the ops.

Autotuning off (DNNLIB_AUTOTUNE=0): every op takes its fixed, documented default path, so the paths a test
exercises do not depend on timings or on what the user's cache holds, no test's trace spends time timing
candidates, and the suite never writes to ~/.cache/dnnlib. Scripts run by tests inherit it. The autotuner's
own tests (tests/ops/test_autotune.py) switch it on with a private cache and injected timings; each path's
numerics are tested by forcing it. Export DNNLIB_AUTOTUNE=1 to run the suite with autotuning.
"""

import os

os.environ.setdefault("DNNLIB_AUTOTUNE", "0")
