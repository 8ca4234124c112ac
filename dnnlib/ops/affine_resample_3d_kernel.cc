// AffineResample3d: trilinear resampling of NDHWC volumes through one affine map per sample, in one CPU op.
//
// Why a kernel: as TensorFlow ops the resampling is a gather of 8 corners per output voxel from index and
// weight tensors 8x the volume (built by a dozen full-size ops), and its gradient a scatter-add of as many
// entries; for ADA (training/augment.py) that made the pipeline a sizeable share of the training step. Here
// each output voxel computes its corners and weights on the fly and reads (or, adjoint, writes) them directly.
//
// Forward (adjoint = false): y[n, o, c] = sum over the 8 corners k of w_k * (x[n, i_k, c] if i_k is inside the
// grid else background), the sampling position of output voxel o being matrix[n] @ (o, 1) in input voxel
// indices, clamped to [-1, size] per axis (beyond it every corner is background). Linear in x plus a constant,
// so its gradient is the adjoint (adjoint = true): dx[n, i_k, c] += w_k * dy[n, o, c] over the inside corners,
// and the adjoint's gradient is the forward map with background 0: every order of derivative stays in this op
// (registered in Python). The matrix gets no gradient (the positions are parameters, not learned).
//
// Determinism: the adjoint accumulates each sample's output in one thread in a fixed order, so results do not
// depend on the thread count (training resumes bit-exactly).
//
// Built at first use by dnnlib/ops/custom_op_build.py; no Python code depends on it being present.

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::errors::InvalidArgument;
using tensorflow::shape_inference::InferenceContext;

REGISTER_OP("AffineResample3d")
    .Input("x: T")
    .Input("matrix: T")
    .Output("y: T")
    .Attr("T: {float, double}")
    .Attr("background: float = 0.0")
    .Attr("adjoint: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      tensorflow::shape_inference::ShapeHandle x, m;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 5, &x));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &m));
      c->set_output(0, x);
      return absl::OkStatus();
    });

// The two corners along one axis: indices i0, i0 + 1 and their weights; a corner outside [0, n) is marked -1.
struct AxisCorners {
  int64_t i[2];
  double w[2];
};

inline AxisCorners Corners(double c, int64_t n) {
  c = std::min(std::max(c, -1.0), static_cast<double>(n));
  const double f0 = std::min(std::floor(c), static_cast<double>(n - 1));
  const double frac = c - f0;
  const int64_t i0 = static_cast<int64_t>(f0);
  AxisCorners a;
  a.i[0] = (i0 >= 0 && i0 < n) ? i0 : -1;
  a.i[1] = (i0 + 1 >= 0 && i0 + 1 < n) ? i0 + 1 : -1;
  a.w[0] = 1.0 - frac;
  a.w[1] = frac;
  return a;
}

template <typename T>
class AffineResample3dOp : public OpKernel {
 public:
  explicit AffineResample3dOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    float bg;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("background", &bg));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("adjoint", &adjoint_));
    background_ = static_cast<T>(bg);
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& matrix = ctx->input(1);
    OP_REQUIRES(ctx, x.dims() == 5, InvalidArgument("AffineResample3d expects NDHWC, got rank ", x.dims()));
    const int64_t N = x.dim_size(0), D = x.dim_size(1), H = x.dim_size(2), W = x.dim_size(3), C = x.dim_size(4);
    OP_REQUIRES(ctx, matrix.dims() == 3 && matrix.dim_size(0) == N && matrix.dim_size(1) >= 3 &&
                         matrix.dim_size(2) == 4,
                InvalidArgument("AffineResample3d matrix must be [N, 3 or 4, 4] with N = ", N));
    Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    if (y->NumElements() == 0) return;
    const T* xp = x.flat<T>().data();
    const T* mp = matrix.flat<T>().data();
    const int64_t mstride = matrix.dim_size(1) * 4;
    T* yp = y->flat<T>().data();
    const int64_t sizes[3] = {D, H, W};
    const int64_t vol = D * H * W * C;
    auto* threads = ctx->device()->tensorflow_cpu_worker_threads();

    // Visit output voxels of sample n, depth slices [d0, d1): fn(out_offset, corner offsets[8], weights[8]),
    // offsets -1 for corners outside the grid.
    auto visit = [&](int64_t n, int64_t d0, int64_t d1, auto&& fn) {
      double m[3][4];
      for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 4; ++b) m[a][b] = static_cast<double>(mp[n * mstride + a * 4 + b]);
      int64_t off[8];
      T w[8];
      for (int64_t od = d0; od < d1; ++od) {
        for (int64_t oh = 0; oh < H; ++oh) {
          for (int64_t ow = 0; ow < W; ++ow) {
            AxisCorners ax[3];
            for (int a = 0; a < 3; ++a) {
              ax[a] = Corners(m[a][0] * od + m[a][1] * oh + m[a][2] * ow + m[a][3], sizes[a]);
            }
            for (int k = 0; k < 8; ++k) {
              const int64_t i = ax[0].i[k >> 2], j = ax[1].i[(k >> 1) & 1], l = ax[2].i[k & 1];
              off[k] = (i < 0 || j < 0 || l < 0) ? -1 : ((i * H + j) * W + l) * C;
              w[k] = static_cast<T>(ax[0].w[k >> 2] * ax[1].w[(k >> 1) & 1] * ax[2].w[k & 1]);
            }
            fn(((od * H + oh) * W + ow) * C, off, w);
          }
        }
      }
    };

    if (!adjoint_) {
      const T bg = background_;
      auto work = [&](int64_t begin, int64_t end) {
        for (int64_t item = begin; item < end; ++item) {
          const int64_t n = item / D, od = item % D;
          const T* src = xp + n * vol;
          T* dst = yp + n * vol;
          visit(n, od, od + 1, [&](int64_t o, const int64_t* off, const T* w) {
            for (int64_t c = 0; c < C; ++c) {
              T acc = T(0);
              for (int k = 0; k < 8; ++k) acc += w[k] * (off[k] < 0 ? bg : src[off[k] + c]);
              dst[o + c] = acc;
            }
          });
        }
      };
      tensorflow::Shard(threads->num_threads, threads->workers, N * D, 40 * H * W * C, work);
    } else {
      // One work item per sample: its scatter-adds stay in one thread, in one order.
      auto work = [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
          const T* src = xp + n * vol;
          T* dst = yp + n * vol;
          std::fill(dst, dst + vol, T(0));
          visit(n, 0, D, [&](int64_t o, const int64_t* off, const T* w) {
            for (int k = 0; k < 8; ++k) {
              if (off[k] < 0) continue;
              for (int64_t c = 0; c < C; ++c) dst[off[k] + c] += w[k] * src[o + c];
            }
          });
        }
      };
      tensorflow::Shard(threads->num_threads, threads->workers, N, 40 * vol, work);
    }
  }

 private:
  T background_;
  bool adjoint_;
};

REGISTER_KERNEL_BUILDER(Name("AffineResample3d").Device(DEVICE_CPU).TypeConstraint<float>("T"),
                        AffineResample3dOp<float>);
REGISTER_KERNEL_BUILDER(Name("AffineResample3d").Device(DEVICE_CPU).TypeConstraint<double>("T"),
                        AffineResample3dOp<double>);

}  // namespace
