"""The fixed defaults of dnnlib/ops (the paths taken with autotuning off, as in this suite) and what the device,
dtype and tracing context allow, checked without a GPU: each op's pure choice function over a table of
(device, dtype, XLA, export) facts, and the facts themselves (the device list, jit_compile, SavedModel export)
read from a faked device list or a real trace. The paths' numerics are checked in the ops' own tests."""

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.ops import conv3d as C
from dnnlib.ops import custom_op_build
from dnnlib.ops import fused_bias_act as B
from dnnlib.ops import modulated_conv3d as M
from dnnlib.ops import upfirdn_3d as U

F16, BF16, F32, F64 = tf.float16, tf.bfloat16, tf.float32, tf.float64
SAME3 = ((1, 1),) * 3
NO_PAD = ((0, 0),) * 3


def _fake_devices(monkeypatch, num_gpus):
    """tf.config.list_physical_devices answering as on a machine with num_gpus GPUs (and the conv3d cache
    emptied, so the op asks again)."""
    real = tf.config.list_physical_devices

    def listed(device_type=None):
        gpus = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(num_gpus)]
        cpus = [d for d in real("CPU")]
        if device_type == "GPU":
            return gpus
        return cpus if device_type == "CPU" else cpus + gpus

    monkeypatch.setattr(tf.config, "list_physical_devices", listed)
    C._have_gpu.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_device_cache():
    yield
    C._have_gpu.cache_clear()  # the next caller sees the real device list


@pytest.mark.parametrize("num_gpus,expect", [(0, False), (1, True), (2, True)])
def test_gpu_is_read_from_the_device_list(monkeypatch, num_gpus, expect):
    _fake_devices(monkeypatch, num_gpus)
    assert C._have_gpu() is expect


# (GPU, dtype, kernel size, pads) -> conv3d path. A GPU keeps tf.nn.conv3d and cuDNN's gradients in every dtype.
CONV_CASES = [
    (True, F32, (3, 3, 3), SAME3, "tf"),
    (True, F16, (3, 3, 3), SAME3, "tf"),
    (True, BF16, (3, 3, 3), SAME3, "tf"),
    (True, F32, (1, 1, 1), NO_PAD, "tf"),
    (False, F32, (3, 3, 3), SAME3, "fast_grad"),
    (False, F64, (3, 3, 3), SAME3, "fast_grad"),
    (False, BF16, (3, 3, 3), SAME3, "fast_grad"),
    (False, F16, (3, 3, 3), SAME3, "fast_grad"),
    (False, F32, (1, 1, 1), NO_PAD, "matmul_1x1"),
    (False, BF16, (1, 1, 1), NO_PAD, "matmul_1x1"),
    (False, F32, (1, 1, 1), ((1, 1), (0, 0), (0, 0)), "fast_grad"),  # padded 1x1x1: not a plain matmul
    (False, F32, (2, 2, 2), ((0, 1),) * 3, "fast_grad"),
]


@pytest.mark.parametrize("gpu,dtype,ksize,pads,expect", CONV_CASES)
def test_conv3d_path(gpu, dtype, ksize, pads, expect):
    del dtype  # the table states it: conv3d's choice does not depend on the dtype
    assert C.conv_path(gpu, ksize, pads) == expect


@pytest.mark.parametrize("num_gpus,expect", [(0, "_conv_fast"), (2, "_forward")])
def test_conv3d_follows_the_faked_device_list(monkeypatch, num_gpus, expect):
    _fake_devices(monkeypatch, num_gpus)
    calls = []
    for name in ("_forward", "_conv_1x1", "_conv_fast"):
        orig = getattr(C, name)
        monkeypatch.setattr(C, name, lambda *a, orig=orig, name=name: calls.append(name) or orig(*a))
    C.conv3d(tf.ones([1, 3, 3, 3, 2]), tf.ones([3, 3, 3, 2, 2]))
    assert calls[0] == expect  # (the fast path runs _forward inside)


# (GPU, dtype, traced for XLA, traced for export, kernel builds) -> FIR path.
FIR_CASES = [
    (False, F32, False, False, True, "kernel"),
    (False, F64, False, False, True, "kernel"),
    (False, F16, False, False, True, "tf_ops"),
    (False, BF16, False, False, True, "tf_ops"),
    (False, F32, True, False, True, "tf_ops"),   # XLA cannot compile the custom op
    (False, F32, False, True, True, "tf_ops"),   # a SavedModel must load where the kernel is not built
    (False, F32, False, False, False, "tf_ops"),  # no compiler here
    (True, F32, False, False, True, "tf_ops"),
    (True, F16, False, False, True, "tf_ops"),
    (True, BF16, False, False, True, "tf_ops"),
    (True, F32, True, False, True, "tf_ops"),
    (True, F32, False, True, True, "tf_ops"),
]


@pytest.mark.parametrize("gpu,dtype,xla,export,builds,expect", FIR_CASES)
def test_kernel_path(gpu, dtype, xla, export, builds, expect):
    asked = []
    got = custom_op_build.kernel_path(dtype, gpu=gpu, xla=xla, export=export,
                                      kernel_builds=lambda: asked.append(1) or builds)
    assert got == expect
    # The build is attempted only when everything else allows the kernel (a GPU machine never compiles it).
    assert asked == ([1] if (not gpu and not xla and not export and dtype in (F32, F64)) else [])


def test_kernel_path_accepts_dtype_names():
    assert custom_op_build.kernel_path("float32", False, lambda: True, xla=False, export=False) == "kernel"
    assert custom_op_build.kernel_path("bfloat16", False, lambda: True, xla=False, export=False) == "tf_ops"


# (GPU, input voxels x channels per sample) -> upsample_conv_3d's transposed conv.
TRANSPOSED_CASES = [
    (False, 1000, "polyphase"),
    (False, U.POLYPHASE_MAX_ELEMENTS, "polyphase"),
    (False, U.POLYPHASE_MAX_ELEMENTS + 1, "conv3d_transpose"),
    (True, 1000, "conv3d_transpose"),
    (True, U.POLYPHASE_MAX_ELEMENTS + 1, "conv3d_transpose"),
]


@pytest.mark.parametrize("gpu,elements,expect", TRANSPOSED_CASES)
def test_transposed_conv_path(gpu, elements, expect):
    assert U.transposed_conv_path(gpu, elements) == expect


@pytest.mark.parametrize("num_gpus,expect", [(0, True), (1, False)])
def test_polyphase_follows_the_faked_device_list(monkeypatch, num_gpus, expect):
    _fake_devices(monkeypatch, num_gpus)
    assert U._use_polyphase(tf.zeros([1, 4, 4, 4, 2])) is expect


def test_xla_and_export_are_detected_while_tracing(tmp_path):
    seen = {}

    def probe(name):
        def fn(x):
            seen[name] = (custom_op_build.in_xla_compile(), custom_op_build.in_saved_model_save())
            return x * 2
        return fn

    probe("eager")(tf.ones([1]))
    tf.function(probe("graph"))(tf.ones([1]))
    tf.function(probe("xla"), jit_compile=True)(tf.ones([1]))
    module = tf.Module()
    module.f = tf.function(probe("export"), input_signature=[tf.TensorSpec([1])])
    tf.saved_model.save(module, str(tmp_path / "m"))
    assert seen == {"eager": (False, False), "graph": (False, False), "xla": (True, False), "export": (False, True)}


@pytest.mark.parametrize("num_gpus,dtype,xla,expect_kernel", [
    (0, F32, False, True), (0, F32, True, False), (0, BF16, False, False), (1, F32, False, False)])
def test_fir_choice_inside_real_traces(monkeypatch, num_gpus, dtype, xla, expect_kernel):
    # The facts kernel_path is given come from the faked device list and the real trace.
    _fake_devices(monkeypatch, num_gpus)
    monkeypatch.setattr(U, "kernel_library", lambda: object())  # "builds": only the choice is traced here
    chosen, separable = [], U._upfirdn_separable
    monkeypatch.setattr(U, "_upfirdn_kernel", lambda *a: chosen.append("kernel") or separable(*a))
    monkeypatch.setattr(U, "_upfirdn_separable", lambda *a: chosen.append("ops") or separable(*a))
    fn = tf.function(lambda x: U.filter_3d(x, [1, 2, 1]), jit_compile=xla)
    fn.get_concrete_function(tf.TensorSpec([1, 4, 4, 4, 1], dtype))
    assert chosen[0] == ("kernel" if expect_kernel else "ops")


# (static batch, output voxels per sample, inside modulation_of_activations) -> modulated_conv3d path; the same
# on every device and dtype.
MODULATION_CASES = [
    (4, M._PER_SAMPLE_MIN_VOXELS, False, "per_sample_weights"),
    (1, 10 * M._PER_SAMPLE_MIN_VOXELS, False, "per_sample_weights"),
    (4, M._PER_SAMPLE_MIN_VOXELS - 1, False, "scaled_activations"),
    (None, 10 * M._PER_SAMPLE_MIN_VOXELS, False, "scaled_activations"),
    (4, 10 * M._PER_SAMPLE_MIN_VOXELS, True, "scaled_activations"),
]


@pytest.mark.parametrize("batch,voxels,scale,expect", MODULATION_CASES)
def test_modulation_path(batch, voxels, scale, expect):
    assert M.modulation_path(batch, voxels, scale) == expect


@pytest.mark.parametrize("batch,shape,up,block,expect", [
    (2, (16, 16, 32), None, False, True),      # 8192 voxels
    (2, (8, 8, 16), (2, 2, 2), False, True),   # 8192 after upsampling
    (2, (8, 8, 16), None, False, False),
    (None, (16, 16, 32), None, False, False),
    (2, (16, 16, 32), None, True, False)])
def test_per_sample_weights_reads_the_tensor(batch, shape, up, block, expect):
    x = tf.TensorSpec([batch, *shape, 3])
    if block:
        with M.modulation_of_activations():
            assert M._per_sample_weights(x, up) is expect
    else:
        assert M._per_sample_weights(x, up) is expect


# (act, gain, alpha, dtype) -> how fused_bias_act is differentiated (every device).
GRAD_CASES = [
    ("lrelu", np.sqrt(2), 0.2, F32, "leaky_relu_grad"),
    ("lrelu", np.sqrt(2), 0.2, F16, "leaky_relu_grad"),
    ("lrelu", np.sqrt(2), 0.2, BF16, "leaky_relu_grad"),
    ("lrelu", np.sqrt(2), 0.2, F64, "from_output"),  # LeakyReluGrad's alpha is a float32 attribute
    ("lrelu", -1.0, 0.2, F32, "from_output"),        # a negative gain flips sign(y)
    ("lrelu", 1.0, -0.5, F32, "from_output"),
    ("lrelu", 0.0, 0.2, F32, "autodiff"),
    ("linear", 1.0, 0.2, F16, "from_output"),
    ("tanh", 1.0, 0.2, BF16, "from_output"),
    ("swish", 1.0, 0.2, F32, "autodiff"),            # no derivative from the output alone
]


@pytest.mark.parametrize("act,gain,alpha,dtype,expect", GRAD_CASES)
def test_fused_bias_act_gradient_path(act, gain, alpha, dtype, expect):
    assert B.gradient_path(act, gain, alpha, dtype) == expect


@pytest.mark.parametrize("act,fused,custom", [("lrelu", True, True), ("tanh", False, True), ("swish", False, False)])
def test_fused_bias_act_gradient_in_the_graph(act, fused, custom):
    @tf.function
    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = B.fused_bias_act(x, act=act)
        return tape.gradient(y, x)

    ops = {op.type for op in grad.get_concrete_function(tf.TensorSpec([2, 3])).graph.get_operations()}
    assert ("LeakyReluGrad" in ops) == fused
    assert ("IdentityN" in ops) == custom  # what tf.custom_gradient leaves in a graph
