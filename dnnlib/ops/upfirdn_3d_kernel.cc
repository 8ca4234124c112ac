// Upfirdn3d: upsample (zero insertion), pad, separable FIR, downsample an NDHWC volume in one CPU op.
//
// Why a kernel: TensorFlow has no CPU primitive for a separable 3-D FIR; three depthwise conv2d passes
// (dnnlib/ops/upfirdn_3d.py, the TensorFlow-ops path) each stream the whole volume through memory, and at
// the configs' top resolution that made the FIR about a tenth of a training step. Here each block of
// output rows is built from the input rows it needs in cache-sized scratch buffers (D pass, then H, then
// W), so the volume is read from memory about once and written once.
//
// Per axis: y[j] = sum_t taps[t] * z[j*down + t - pad_lo], z[k] = x[k/up] when k % up == 0 and
// 0 <= k/up < n, else 0; j in [0, out_size). The adjoint of this map is the same map with up and down
// swapped, the taps reversed and pad_lo' = len(taps) - 1 - pad_lo, so the gradient (registered in
// Python) is this op again and every order of derivative stays inside it.
//
// Built at first use by dnnlib/ops/custom_op_build.py; no Python code depends on it being present.

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <vector>

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
using tensorflow::TensorShape;
using tensorflow::errors::InvalidArgument;
using tensorflow::shape_inference::InferenceContext;

REGISTER_OP("Upfirdn3d")
    .Input("x: T")
    .Input("taps_d: T")
    .Input("taps_h: T")
    .Input("taps_w: T")
    .Output("y: T")
    .Attr("T: {float, double}")
    .Attr("up: list(int)")
    .Attr("down: list(int)")
    .Attr("pad_lo: list(int)")
    .Attr("out_size: list(int)")
    .SetShapeFn([](InferenceContext* c) {
      std::vector<int64_t> out;
      TF_RETURN_IF_ERROR(c->GetAttr("out_size", &out));
      if (out.size() != 3) return InvalidArgument("out_size must have 3 entries");
      tensorflow::shape_inference::ShapeHandle x;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 5, &x));
      c->set_output(0, c->MakeShape({c->Dim(x, 0), out[0], out[1], out[2], c->Dim(x, 4)}));
      return absl::OkStatus();
    });

// The input indices and weights each output sample of one axis reads (only the nonzero ones).
template <typename T>
struct AxisTaps {
  std::vector<int64_t> start;  // start[j] .. start[j+1]: entries of output j
  std::vector<int64_t> index;
  std::vector<T> weight;
  bool shift_only = false;  // up == down == 1: every output reads index j + t - pad_lo
};

template <typename T>
AxisTaps<T> PlanAxis(const std::vector<T>& taps, int64_t up, int64_t down, int64_t pad_lo, int64_t n,
                  int64_t out_size) {
  AxisTaps<T> a;
  a.shift_only = (up == 1 && down == 1);
  a.start.push_back(0);
  for (int64_t j = 0; j < out_size; ++j) {
    for (int64_t t = 0; t < static_cast<int64_t>(taps.size()); ++t) {
      const int64_t k = j * down + t - pad_lo;
      if (k < 0 || k % up != 0 || k / up >= n || taps[t] == T(0)) continue;
      a.index.push_back(k / up);
      a.weight.push_back(taps[t]);
    }
    a.start.push_back(static_cast<int64_t>(a.index.size()));
  }
  return a;
}

// dst[0:len] = sum over entries p of output j of weight[p] * src[(index[p] - first) * row + 0:len]: rows of
// `row` elements, src holding rows first, first + 1, ...
template <typename T>
inline void CombineRows(T* __restrict__ dst, const T* __restrict__ src, int64_t row, int64_t len,
                        const AxisTaps<T>& a, int64_t j, int64_t first = 0) {
  const int64_t b = a.start[j], e = a.start[j + 1];
  if (b == e) {
    std::fill(dst, dst + len, T(0));
    return;
  }
  {
    const T w = a.weight[b];
    const T* __restrict__ s = src + (a.index[b] - first) * row;
    for (int64_t i = 0; i < len; ++i) dst[i] = w * s[i];
  }
  for (int64_t p = b + 1; p < e; ++p) {
    const T w = a.weight[p];
    const T* __restrict__ s = src + (a.index[p] - first) * row;
    for (int64_t i = 0; i < len; ++i) dst[i] += w * s[i];
  }
}

// The input rows [first, last) that outputs [j0, j1) of an axis read (first == last: none).
template <typename T>
void RowsRead(const AxisTaps<T>& a, int64_t j0, int64_t j1, int64_t* first, int64_t* last) {
  *first = INT64_MAX;
  *last = INT64_MIN;
  for (int64_t p = a.start[j0]; p < a.start[j1]; ++p) {
    *first = std::min(*first, a.index[p]);
    *last = std::max(*last, a.index[p] + 1);
  }
  if (*first >= *last) *first = *last = 0;
}

template <typename T>
class Upfirdn3dOp : public OpKernel {
 public:
  explicit Upfirdn3dOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("up", &up_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("down", &down_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("pad_lo", &pad_lo_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("out_size", &out_));
    OP_REQUIRES(ctx, up_.size() == 3 && down_.size() == 3 && pad_lo_.size() == 3 && out_.size() == 3,
                InvalidArgument("up, down, pad_lo and out_size need 3 entries (D, H, W)"));
    for (int a = 0; a < 3; ++a) {
      OP_REQUIRES(ctx, up_[a] >= 1 && down_[a] >= 1 && out_[a] >= 1,
                  InvalidArgument("up, down and out_size must be >= 1"));
    }
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    OP_REQUIRES(ctx, x.dims() == 5, InvalidArgument("Upfirdn3d expects NDHWC, got rank ", x.dims()));
    const int64_t N = x.dim_size(0), D = x.dim_size(1), H = x.dim_size(2), W = x.dim_size(3),
                  C = x.dim_size(4);
    const int64_t OD = out_[0], OH = out_[1], OW = out_[2];
    Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({N, OD, OH, OW, C}), &y));
    if (y->NumElements() == 0) return;
    std::vector<T> taps[3];
    for (int a = 0; a < 3; ++a) {
      const Tensor& t = ctx->input(1 + a);
      OP_REQUIRES(ctx, t.dims() == 1 && t.NumElements() > 0,
                  InvalidArgument("Upfirdn3d taps must be non-empty 1-D tensors"));
      taps[a].assign(t.flat<T>().data(), t.flat<T>().data() + t.NumElements());
    }
    const AxisTaps<T> ad = PlanAxis(taps[0], up_[0], down_[0], pad_lo_[0], D, OD);
    const AxisTaps<T> ah = PlanAxis(taps[1], up_[1], down_[1], pad_lo_[1], H, OH);
    const AxisTaps<T> aw = PlanAxis(taps[2], up_[2], down_[2], pad_lo_[2], W, OW);
    const T* xp = x.flat<T>().data();
    T* yp = y->flat<T>().data();
    const int64_t in_plane = H * W * C, out_plane = OH * OW * C;

    // One work item = a block of output rows [oh0, oh1) of one depth slice of one sample: the D pass fills
    // the input rows the block reads (plane A), the H pass makes the block's rows at input width (B), the
    // W pass writes them out. A and B hold up to 256 KB each: small enough to stay in cache, tall enough
    // that little of the D pass is redone for the rows neighbouring blocks share (smaller blocks are slower
    // at 1 mm).
    const int64_t row_in = W * C;
    const int64_t rows_per_block = std::max<int64_t>(
        1, std::min<int64_t>(OH, (262144 / static_cast<int64_t>(sizeof(T))) / std::max<int64_t>(row_in, 1)));
    const int64_t blocks = (OH + rows_per_block - 1) / rows_per_block;
    auto work = [&](int64_t begin, int64_t end) {
      std::vector<T> plane_a, plane_b(rows_per_block * row_in);
      for (int64_t item = begin; item < end; ++item) {
        const int64_t n = item / (OD * blocks), od = (item / blocks) % OD, blk = item % blocks;
        const int64_t oh0 = blk * rows_per_block, oh1 = std::min(OH, oh0 + rows_per_block);
        int64_t ih0, ih1;
        RowsRead(ah, oh0, oh1, &ih0, &ih1);
        plane_a.resize(std::max<int64_t>(1, (ih1 - ih0) * row_in));
        if (ih1 > ih0) {
          CombineRows(plane_a.data(), xp + n * D * in_plane + ih0 * row_in, in_plane, (ih1 - ih0) * row_in, ad, od);
        }
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          CombineRows(plane_b.data() + (oh - oh0) * row_in, plane_a.data(), row_in, row_in, ah, oh, ih0);
        }
        T* out = yp + (n * OD + od) * out_plane;
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          WPass(out + oh * OW * C, plane_b.data() + (oh - oh0) * row_in, W, OW, C, aw, taps[2]);
        }
      }
    };
    const int64_t cost = 16 * rows_per_block * (row_in + OW * C);  // rough cycles per item, for sharding only
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    tensorflow::Shard(ctx->device()->tensorflow_cpu_worker_threads()->num_threads, workers, N * OD * blocks, cost,
                      work);
  }

 private:
  // One row: out [OW, C] from row [W, C].
  void WPass(T* __restrict__ out, const T* __restrict__ row, int64_t W, int64_t OW, int64_t C,
             const AxisTaps<T>& aw, const std::vector<T>& taps) const {
    if (!aw.shift_only) {
      for (int64_t ow = 0; ow < OW; ++ow) CombineRows(out + ow * C, row, C, C, aw, ow);
      return;
    }
    // up == down == 1: tap t adds a shifted copy of the row, one contiguous run over (W, C) per tap.
    std::fill(out, out + OW * C, T(0));
    const int64_t lo = pad_lo_[2];
    for (int64_t t = 0; t < static_cast<int64_t>(taps.size()); ++t) {
      if (taps[t] == T(0)) continue;
      const int64_t shift = t - lo;  // out[ow] += taps[t] * row[ow + shift]
      const int64_t ow0 = std::max<int64_t>(0, -shift), ow1 = std::min<int64_t>(OW, W - shift);
      if (ow1 <= ow0) continue;
      const T w = taps[t];
      T* __restrict__ o = out + ow0 * C;
      const T* __restrict__ s = row + (ow0 + shift) * C;
      const int64_t len = (ow1 - ow0) * C;
      for (int64_t i = 0; i < len; ++i) o[i] += w * s[i];
    }
  }

  std::vector<int64_t> up_, down_, pad_lo_, out_;
};

REGISTER_KERNEL_BUILDER(Name("Upfirdn3d").Device(DEVICE_CPU).TypeConstraint<float>("T"), Upfirdn3dOp<float>);
REGISTER_KERNEL_BUILDER(Name("Upfirdn3d").Device(DEVICE_CPU).TypeConstraint<double>("T"), Upfirdn3dOp<double>);

}  // namespace
