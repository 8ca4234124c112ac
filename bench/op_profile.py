"""Op time of a traced step by part, from TensorFlow's profiler (the profile half of bench_step's breakdown).

Each executed op appears in the profile as "<scoped name>:<type>". An op belongs to a part when a component
of its name is that part's name scope (the ops set them: upfirdn, bias_act, modulation, noise; TensorFlow
names an op's autodiff gradient under "gradient_tape/<the op's scopes>", so gradients follow their op), or
failing that by its type (the FIR kernel, or a depthwise conv: only ever a FIR pass). Everything else is the
convolutions, their gradients and the glue around them, and the optimiser.

Shares are op time over all op time of the same runs: unlike an ablation's difference of two noisy step
times, a slowdown of the host scales every op alike and cancels in the ratio. Two inter-op threads run ops
side by side, so op time exceeds wall time; the shares are of op time.
"""

import collections
import glob
import os
import re
import tempfile

# part -> (name scopes, op types that belong to it whatever their scope)
PARTS = {
    "FIR resampling (upfirdn)": (("upfirdn",), ("Upfirdn3d", "DepthwiseConv2dNative",
                                                "DepthwiseConv2dNativeBackpropInput",
                                                "DepthwiseConv2dNativeBackpropFilter")),
    "bias + activation": (("bias_act",), ("BiasAdd", "BiasAddGrad", "LeakyRelu", "LeakyReluGrad")),
    "modulation/demodulation": (("modulation",), ()),
    "noise inputs": (("noise",), ()),
}
REST = "convs, their gradients, glue, optimiser"
# Events that wrap other ops (a function call, a control-flow body) would count their ops twice.
_WRAPPERS = {"PartitionedCall", "StatefulPartitionedCall", "While", "StatelessWhile", "If", "StatelessIf", "Case"}
_OP_EVENT = re.compile(r"^([^:\s]+):([A-Za-z0-9_]+)$")


def classify(name, op_type):
    """The part an op event belongs to (a PARTS key or REST)."""
    components = {re.sub(r"_\d+$", "", c) for c in name.split("/")}
    for part, (scopes, _) in PARTS.items():
        if components.intersection(scopes):
            return part
    for part, (_, types) in PARTS.items():
        if op_type in types:
            return part
    return REST


def op_seconds(xspace):
    """{part: seconds} of the op events of one profiler XSpace (host CPU planes)."""
    out = collections.Counter()
    for plane in xspace.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            for event in line.events:
                m = _OP_EVENT.match(plane.event_metadata[event.metadata_id].name)
                if m is None or m.group(2) in _WRAPPERS:
                    continue
                out[classify(*m.groups())] += event.duration_ps * 1e-12
    return out


def profile_parts(fn, runs=1):
    """Run fn() `runs` times under tf.profiler; {part: op seconds per run}."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    total = collections.Counter()
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as logdir:
            tf.profiler.experimental.start(logdir)
            try:
                fn()
            finally:
                tf.profiler.experimental.stop()
            files = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
            if not files:
                raise RuntimeError(f"tf.profiler wrote no .xplane.pb under {logdir}")
            xspace = xplane_pb2.XSpace()
            with open(files[0], "rb") as f:
                xspace.ParseFromString(f.read())
            total.update(op_seconds(xspace))
    return {k: v / runs for k, v in total.items()}


def step_parts(harness, phases, runs=1):
    """{part: op seconds} of one lazy-averaged step of a bench.common.StepHarness over `phases`."""
    parts = collections.Counter()
    for p in phases:
        for part, sec in profile_parts(lambda p=p: harness.run(p), runs=runs).items():
            parts[part] += sec * harness.weight(p)
    return dict(parts)


def non_conv_share(parts):
    return 1.0 - parts.get(REST, 0.0) / sum(parts.values())
