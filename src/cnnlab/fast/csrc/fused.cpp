// Fused CPU kernels for the layers around 2x2/stride-2 max pooling (channels last).
//
// 1. conv_pool: Conv2D (stride 1) + 2x2 max pooling (+ ReLU) for a layer whose input needs
//    no gradient (the first layer, which sees the data). The full-resolution convolution
//    output is never written: each pooled pixel computes its four convolution outputs in
//    registers, keeps the largest per channel and remembers which (one byte). The weight
//    gradient is computed straight from the input and those choices.
// 2. pool: 2x2 max pooling (+ ReLU) of any activation, forward and input gradient, with
//    the winner of each window in one byte, so the backward pass writes every input
//    gradient once (no zero fill, no index tensor of int64).
//
// Layouts (Keras's, channels last):
//   x   (N, Hp, Wp, Cin)  float32, already padded for 'same' convolution
//   w   (KH, KW, Cin, Cout) float32
//   out (N, Ho, Wo, Cout) the pooled output; arg (N, Ho, Wo, Cout) uint8:
//       0..3 the winning offset (row-major in the window), CLIPPED when ReLU zeroed it.
// A window offset outside the pooled input is skipped, which is what max pooling with
// ceil_mode (TF 'same' padded only at the end) does. The first maximum in scan order
// wins and NaN propagates (the last NaN wins), as in torch's max_pool2d; ReLU keeps NaN and zeroes x <= 0
// (its gradient there is 0), as torch's relu does.
//
// Built once per instruction set (setup.py, cnnlab/fast/isa.py); the AVX-512 paths exist
// only in the binary built with -mavx512*, which cnnlab loads only on a CPU that has them.

// GCC 12's AVX-512 headers make their "undefined" vectors by self-initialization, which
// -W(maybe-)uninitialized reports inside every intrinsic that takes one (GCC bug 105593,
// fixed in 13): silenced for the headers only, so this file's own code is still checked.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <torch/extension.h>
#include <ATen/Parallel.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic pop
#endif

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

namespace {

constexpr uint8_t CLIPPED = 4;

void check_conv(const at::Tensor& x, const at::Tensor& w) {
  TORCH_CHECK(x.dim() == 4 && w.dim() == 4, "expected x (N,H,W,C) and w (KH,KW,Cin,Cout)");
  TORCH_CHECK(x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat, "float32 only");
  TORCH_CHECK(x.is_contiguous() && w.is_contiguous(), "contiguous tensors only");
  TORCH_CHECK(x.size(3) == w.size(2), "channel mismatch");
}

// Max over the valid offsets of acc (4, C) into o, the winner into a; ReLU if asked.
inline void pick_scalar(const float* acc, int valid, int64_t C, bool relu, float* o, uint8_t* a) {
  for (int64_t c = 0; c < C; ++c) {
    float m = 0.f;
    int arg = -1;
    for (int off = 0; off < 4; ++off) {
      if (!(valid >> off & 1)) continue;
      const float v = acc[off * C + c];
      if (arg < 0 || v > m || v != v) { m = v; arg = off; }
    }
    if (relu && m <= 0.f) { m = 0.f; arg = CLIPPED; }
    o[c] = m;
    if (a) a[c] = static_cast<uint8_t>(arg);
  }
}

#if defined(__AVX512F__)
// The 16-lane version of pick_scalar for four valid offsets.
inline void pick16(const __m512* v, bool relu, float* o, uint8_t* a) {
  __m512 m = v[0];
  __m512i arg = _mm512_setzero_si512();
  for (int off = 1; off < 4; ++off) {
    const __mmask16 take = _mm512_cmp_ps_mask(v[off], m, _CMP_GT_OQ) |
                           _mm512_cmp_ps_mask(v[off], v[off], _CMP_UNORD_Q);
    m = _mm512_mask_blend_ps(take, m, v[off]);
    arg = _mm512_mask_blend_epi32(take, arg, _mm512_set1_epi32(off));
  }
  if (relu) {
    const __mmask16 clip = _mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_LE_OQ);
    m = _mm512_mask_blend_ps(clip, m, _mm512_setzero_ps());
    arg = _mm512_mask_blend_epi32(clip, arg, _mm512_set1_epi32(CLIPPED));
  }
  _mm512_storeu_ps(o, m);
  if (a) _mm_storeu_si128(reinterpret_cast<__m128i*>(a), _mm512_cvtepi32_epi8(arg));
}

// One pooled pixel, NV*16 output channels starting at channel co0: the four convolution
// outputs under it (all inside the conv output), pooled.
// CIN > 0 fixes the input channels at compile time (1: grayscale, 3: RGB), so the tap
// loop carries no inner loop; CIN == 0 reads them from Cin.
template <int NV, int CIN>
inline void conv_pool_pixel(const float* __restrict__ x00, const float* __restrict__ w,
                            const float* __restrict__ b, int64_t co0, int64_t Cout,
                            int64_t row_stride, int64_t Cin_, int64_t KH, int64_t KW, bool relu,
                            float* o, uint8_t* a) {
  const int64_t Cin = CIN > 0 ? CIN : Cin_;
  __m512 acc[4][NV];
  for (int v = 0; v < NV; ++v) {
    const __m512 bias = b ? _mm512_loadu_ps(b + co0 + 16 * v) : _mm512_setzero_ps();
    for (int off = 0; off < 4; ++off) acc[off][v] = bias;
  }
  for (int64_t ky = 0; ky < KH; ++ky) {
    for (int64_t kx = 0; kx < KW; ++kx) {
      const float* __restrict__ xr = x00 + ky * row_stride + kx * Cin;
      const float* __restrict__ wr = w + (ky * KW + kx) * Cin * Cout + co0;
      for (int64_t ci = 0; ci < Cin; ++ci, wr += Cout) {
        __m512 wv[NV];
        for (int v = 0; v < NV; ++v) wv[v] = _mm512_loadu_ps(wr + 16 * v);
        const __m512 x0 = _mm512_set1_ps(xr[ci]), x1 = _mm512_set1_ps(xr[Cin + ci]);
        const __m512 x2 = _mm512_set1_ps(xr[row_stride + ci]);
        const __m512 x3 = _mm512_set1_ps(xr[row_stride + Cin + ci]);
        for (int v = 0; v < NV; ++v) {
          acc[0][v] = _mm512_fmadd_ps(x0, wv[v], acc[0][v]);
          acc[1][v] = _mm512_fmadd_ps(x1, wv[v], acc[1][v]);
          acc[2][v] = _mm512_fmadd_ps(x2, wv[v], acc[2][v]);
          acc[3][v] = _mm512_fmadd_ps(x3, wv[v], acc[3][v]);
        }
      }
    }
  }
  for (int v = 0; v < NV; ++v) {
    const __m512 four[4] = {acc[0][v], acc[1][v], acc[2][v], acc[3][v]};
    pick16(four, relu, o + co0 + 16 * v, a ? a + co0 + 16 * v : nullptr);
  }
}

// One input channel and a KxK kernel (a grayscale first layer): a row of pooled pixels
// with the whole kernel held in registers (K*K*NV vectors), j from j0 to j1.
template <int NV, int K>
inline void conv_pool_row_c1(const float* __restrict__ x0row, int64_t Wp,
                             const float* __restrict__ w, const float* __restrict__ b,
                             int64_t j0, int64_t j1, bool relu, float* o, uint8_t* a) {
  constexpr int C = 16 * NV;
  __m512 wr[K * K][NV], bias[NV];
  for (int t = 0; t < K * K; ++t)
    for (int v = 0; v < NV; ++v) wr[t][v] = _mm512_loadu_ps(w + t * C + 16 * v);
  for (int v = 0; v < NV; ++v) bias[v] = b ? _mm512_loadu_ps(b + 16 * v) : _mm512_setzero_ps();
  for (int64_t j = j0; j < j1; ++j) {
    const float* __restrict__ x00 = x0row + 2 * j;
    __m512 acc[4][NV];
    for (int v = 0; v < NV; ++v)
      for (int off = 0; off < 4; ++off) acc[off][v] = bias[v];
    for (int ky = 0; ky < K; ++ky)
      for (int kx = 0; kx < K; ++kx) {
        const float* xr = x00 + ky * Wp + kx;
        const __m512 v0 = _mm512_set1_ps(xr[0]), v1 = _mm512_set1_ps(xr[1]);
        const __m512 v2 = _mm512_set1_ps(xr[Wp]), v3 = _mm512_set1_ps(xr[Wp + 1]);
        for (int v = 0; v < NV; ++v) {
          acc[0][v] = _mm512_fmadd_ps(v0, wr[ky * K + kx][v], acc[0][v]);
          acc[1][v] = _mm512_fmadd_ps(v1, wr[ky * K + kx][v], acc[1][v]);
          acc[2][v] = _mm512_fmadd_ps(v2, wr[ky * K + kx][v], acc[2][v]);
          acc[3][v] = _mm512_fmadd_ps(v3, wr[ky * K + kx][v], acc[3][v]);
        }
      }
    for (int v = 0; v < NV; ++v) {
      const __m512 four[4] = {acc[0][v], acc[1][v], acc[2][v], acc[3][v]};
      pick16(four, relu, o + j * C + 16 * v, a ? a + j * C + 16 * v : nullptr);
    }
  }
}

// Weight and bias gradient of one pooled pixel, NV*16 channels from co0: the pooled
// gradient goes to the winning offset of each channel.
template <int NV, int CIN>
inline void conv_pool_pixel_backward(const float* __restrict__ x00, const float* __restrict__ g,
                                     const uint8_t* __restrict__ a, float* __restrict__ gw,
                                     float* __restrict__ gb, int64_t co0, int64_t Cout,
                                     int64_t row_stride, int64_t Cin_, int64_t KH, int64_t KW) {
  const int64_t Cin = CIN > 0 ? CIN : Cin_;
  __m512 m[4][NV];
  for (int v = 0; v < NV; ++v) {
    const __m512 gv = _mm512_loadu_ps(g + co0 + 16 * v);
    const __m512i av = _mm512_cvtepu8_epi32(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + co0 + 16 * v)));
    __m512 sum = _mm512_setzero_ps();
    for (int off = 0; off < 4; ++off) {
      const __mmask16 hit = _mm512_cmpeq_epi32_mask(av, _mm512_set1_epi32(off));
      m[off][v] = _mm512_maskz_mov_ps(hit, gv);
      sum = _mm512_add_ps(sum, m[off][v]);
    }
    float* gbv = gb + co0 + 16 * v;
    _mm512_storeu_ps(gbv, _mm512_add_ps(_mm512_loadu_ps(gbv), sum));
  }
  for (int64_t ky = 0; ky < KH; ++ky) {
    for (int64_t kx = 0; kx < KW; ++kx) {
      const float* __restrict__ xr = x00 + ky * row_stride + kx * Cin;
      float* __restrict__ gr = gw + (ky * KW + kx) * Cin * Cout + co0;
      for (int64_t ci = 0; ci < Cin; ++ci, gr += Cout) {
        const __m512 x0 = _mm512_set1_ps(xr[ci]), x1 = _mm512_set1_ps(xr[Cin + ci]);
        const __m512 x2 = _mm512_set1_ps(xr[row_stride + ci]);
        const __m512 x3 = _mm512_set1_ps(xr[row_stride + Cin + ci]);
        for (int v = 0; v < NV; ++v) {
          __m512 s = _mm512_loadu_ps(gr + 16 * v);
          s = _mm512_fmadd_ps(x0, m[0][v], s);
          s = _mm512_fmadd_ps(x1, m[1][v], s);
          s = _mm512_fmadd_ps(x2, m[2][v], s);
          s = _mm512_fmadd_ps(x3, m[3][v], s);
          _mm512_storeu_ps(gr + 16 * v, s);
        }
      }
    }
  }
}

// The backward of conv_pool_row_c1: the weight and bias gradients of a row of pooled
// pixels (j from j0 to j1) accumulated in registers, then added to gw and gb.
template <int NV, int K>
inline void conv_pool_row_c1_backward(const float* __restrict__ x0row, int64_t Wp,
                                      const float* __restrict__ g, const uint8_t* __restrict__ a,
                                      int64_t j0, int64_t j1, float* __restrict__ gw,
                                      float* __restrict__ gb) {
  constexpr int C = 16 * NV;
  __m512 sw[K * K][NV], sb[NV];
  for (int t = 0; t < K * K; ++t)
    for (int v = 0; v < NV; ++v) sw[t][v] = _mm512_setzero_ps();
  for (int v = 0; v < NV; ++v) sb[v] = _mm512_setzero_ps();
  for (int64_t j = j0; j < j1; ++j) {
    const float* __restrict__ x00 = x0row + 2 * j;
    __m512 m[4][NV];
    for (int v = 0; v < NV; ++v) {
      const __m512 gv = _mm512_loadu_ps(g + j * C + 16 * v);
      const __m512i av = _mm512_cvtepu8_epi32(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + j * C + 16 * v)));
      for (int off = 0; off < 4; ++off) {
        m[off][v] = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(av, _mm512_set1_epi32(off)), gv);
        sb[v] = _mm512_add_ps(sb[v], m[off][v]);
      }
    }
    for (int ky = 0; ky < K; ++ky)
      for (int kx = 0; kx < K; ++kx) {
        const float* xr = x00 + ky * Wp + kx;
        const __m512 v0 = _mm512_set1_ps(xr[0]), v1 = _mm512_set1_ps(xr[1]);
        const __m512 v2 = _mm512_set1_ps(xr[Wp]), v3 = _mm512_set1_ps(xr[Wp + 1]);
        for (int v = 0; v < NV; ++v) {
          __m512 s = sw[ky * K + kx][v];
          s = _mm512_fmadd_ps(v0, m[0][v], s);
          s = _mm512_fmadd_ps(v1, m[1][v], s);
          s = _mm512_fmadd_ps(v2, m[2][v], s);
          sw[ky * K + kx][v] = _mm512_fmadd_ps(v3, m[3][v], s);
        }
      }
  }
  for (int t = 0; t < K * K; ++t)
    for (int v = 0; v < NV; ++v) {
      float* d = gw + t * C + 16 * v;
      _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), sw[t][v]));
    }
  for (int v = 0; v < NV; ++v)
    _mm512_storeu_ps(gb + 16 * v, _mm512_add_ps(_mm512_loadu_ps(gb + 16 * v), sb[v]));
}

// Runs f.template operator()<NV>(co0) over the channels in blocks of up to 64.
template <typename F>
inline void channel_blocks(int64_t C, F&& f) {
  int64_t co0 = 0;
  for (; co0 + 64 <= C; co0 += 64) f(std::integral_constant<int, 4>{}, co0);
  switch ((C - co0) / 16) {
    case 3: f(std::integral_constant<int, 3>{}, co0); break;
    case 2: f(std::integral_constant<int, 2>{}, co0); break;
    case 1: f(std::integral_constant<int, 1>{}, co0); break;
    default: break;
  }
}
#endif

// pick_scalar, 16 channels at a time where vec (C a multiple of 16).
inline void pick(const float* acc, int valid, int64_t C, bool vec, bool relu, float* o,
                 uint8_t* a) {
#if defined(__AVX512F__)
  if (vec) {  // a missing offset reads as -inf: it never wins
    const __m512 none = _mm512_set1_ps(-INFINITY);
    for (int64_t c = 0; c < C; c += 16) {
      __m512 four[4];
      for (int off = 0; off < 4; ++off)
        four[off] = valid >> off & 1 ? _mm512_loadu_ps(acc + off * C + c) : none;
      pick16(four, relu, o + c, a ? a + c : nullptr);
    }
    return;
  }
#endif
  (void)vec;
  pick_scalar(acc, valid, C, relu, o, a);
}

bool vector_path(int64_t C) {
#if defined(__AVX512F__)
  return C % 16 == 0;
#else
  (void)C;
  return false;
#endif
}

// The four convolution outputs under pooled pixel (i, j), offsets outside skipped.
void conv4_scalar(const float* xp, const float* wp, const float* bp, float* acc, int valid,
                  int64_t n, int64_t i, int64_t j, int64_t Hp, int64_t Wp, int64_t Cin,
                  int64_t KH, int64_t KW, int64_t Cout) {
  for (int off = 0; off < 4; ++off) {
    if (!(valid >> off & 1)) continue;
    const int64_t r = 2 * i + (off >> 1), c = 2 * j + (off & 1);
    float* __restrict__ ac = acc + off * Cout;
    for (int64_t co = 0; co < Cout; ++co) ac[co] = bp ? bp[co] : 0.f;
    for (int64_t ky = 0; ky < KH; ++ky)
      for (int64_t kx = 0; kx < KW; ++kx) {
        const float* __restrict__ xv = xp + ((n * Hp + r + ky) * Wp + c + kx) * Cin;
        const float* __restrict__ wv = wp + (ky * KW + kx) * Cin * Cout;
        for (int64_t ci = 0; ci < Cin; ++ci) {
          const float v = xv[ci];
          const float* __restrict__ wr = wv + ci * Cout;
#pragma omp simd
          for (int64_t co = 0; co < Cout; ++co) ac[co] += v * wr[co];
        }
      }
  }
}

int valid_offsets(int64_t i, int64_t j, int64_t H, int64_t W) {
  int valid = 0;
  for (int off = 0; off < 4; ++off)
    if (2 * i + (off >> 1) < H && 2 * j + (off & 1) < W) valid |= 1 << off;
  return valid;
}

// Weight and bias gradients summed per thread (float, each thread over its share of the
// batch), then added up into tensors in a fixed thread order. The threads' buffers are
// moved in, not copied into zeroed ones (the sparse backward of 2 images: 104 -> 94 us).
struct ThreadGrads {
  int64_t wsize, C;
  std::vector<std::vector<float>> w, b;
  ThreadGrads(int64_t wsize_, int64_t C_)
      : wsize(wsize_), C(C_), w(at::get_num_threads()), b(at::get_num_threads()) {}

  // Called at the end of a parallel_for body with that thread's float sums.
  void add(std::vector<float>&& gw, std::vector<float>&& gb) {
    const int t = at::get_thread_num();
    if (w[t].empty()) {
      w[t] = std::move(gw);
      b[t] = std::move(gb);
      return;
    }
    for (int64_t k = 0; k < wsize; ++k) w[t][k] += gw[k];
    for (int64_t c = 0; c < C; ++c) b[t][c] += gb[c];
  }

  // {gw with shape wshape, gb (C,)}: the threads' sums added in thread order (the first
  // copied, not added to zeros: same values, one pass less over a freshly zeroed tensor).
  std::vector<at::Tensor> tensors(at::IntArrayRef wshape, const at::TensorOptions& options) const {
    auto gw = at::empty(wshape, options);
    auto gb = at::empty({C}, options);
    float* __restrict__ gwp = gw.data_ptr<float>();
    float* __restrict__ gbp = gb.data_ptr<float>();
    bool first = true;
    for (size_t t = 0; t < w.size(); ++t) {
      if (w[t].empty()) continue;
      const float* __restrict__ tw = w[t].data();
      const float* __restrict__ tb = b[t].data();
      if (first) {
        std::copy(tw, tw + wsize, gwp);
        std::copy(tb, tb + C, gbp);
        first = false;
        continue;
      }
      for (int64_t k = 0; k < wsize; ++k) gwp[k] += tw[k];
      for (int64_t c = 0; c < C; ++c) gbp[c] += tb[c];
    }
    if (first) {
      gw.zero_();
      gb.zero_();
    }
    return {gw, gb};
  }
};

#if defined(__AVX512F__)
// The first-layer case with its own row kernels: grayscale, 3x3, 16 or 32 filters.
bool gray_3x3_rows(int64_t Cin, int64_t KH, int64_t KW, int64_t Cout) {
  return Cin == 1 && KH == 3 && KW == 3 && (Cout == 16 || Cout == 32);
}
#endif

// The 2x2/stride-2 pooled output (N, Ho, Wo, C) of an (H, W) map and its winners (undefined
// unless want_arg). Ho is H/2 rounded down ('valid') or up (TF 'same'), and so is Wo.
std::vector<at::Tensor> pooled_outputs(const at::Tensor& x, int64_t H, int64_t W, int64_t Ho,
                                       int64_t Wo, int64_t C, bool want_arg) {
  TORCH_CHECK(H >= 1 && W >= 1 && 2 * Ho - 1 <= H && H <= 2 * Ho + 1 && 2 * Wo - 1 <= W &&
                  W <= 2 * Wo + 1, "pooled size does not fit the input");
  const int64_t N = x.size(0);
  return {at::empty({N, Ho, Wo, C}, x.options()),
          want_arg ? at::empty({N, Ho, Wo, C}, x.options().dtype(at::kByte)) : at::Tensor()};
}

}  // namespace

std::vector<at::Tensor> conv_pool_forward(const at::Tensor& x, const at::Tensor& w,
                                          const at::Tensor& b, int64_t Ho, int64_t Wo,
                                          bool relu, bool want_arg) {
  check_conv(x, w);
  const int64_t N = x.size(0), Hp = x.size(1), Wp = x.size(2), Cin = x.size(3);
  const int64_t KH = w.size(0), KW = w.size(1), Cout = w.size(3);
  const int64_t Hc = Hp - KH + 1, Wc = Wp - KW + 1;  // conv output size
  auto pooled = pooled_outputs(x, Hc, Wc, Ho, Wo, Cout, want_arg);
  auto out = pooled[0], arg = pooled[1];
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  const float* bp = b.defined() && b.numel() ? b.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  uint8_t* ap = want_arg ? arg.data_ptr<uint8_t>() : nullptr;
  const bool vec = vector_path(Cout);
  at::parallel_for(0, N * Ho, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> acc(4 * Cout);
    for (int64_t nr = begin; nr < end; ++nr) {
      const int64_t n = nr / Ho, i = nr % Ho;
      int64_t j = 0;
#if defined(__AVX512F__)
      if (gray_3x3_rows(Cin, KH, KW, Cout) && 2 * i + 1 < Hc) {
        const int64_t full = std::min(Wo, Wc / 2);  // pooled pixels with all four offsets
        const int64_t at_ = (n * Ho + i) * Wo * Cout;
        const float* x0row = xp + (n * Hp + 2 * i) * Wp;
        uint8_t* a = ap ? ap + at_ : nullptr;
        if (Cout == 16) conv_pool_row_c1<1, 3>(x0row, Wp, wp, bp, 0, full, relu, op + at_, a);
        else conv_pool_row_c1<2, 3>(x0row, Wp, wp, bp, 0, full, relu, op + at_, a);
        j = full;
      }
#endif
      for (; j < Wo; ++j) {
        const int64_t at_ = ((n * Ho + i) * Wo + j) * Cout;
        float* o = op + at_;
        uint8_t* a = ap ? ap + at_ : nullptr;
        const int valid = valid_offsets(i, j, Hc, Wc);
#if defined(__AVX512F__)
        if (vec && valid == 15) {
          const float* x00 = xp + ((n * Hp + 2 * i) * Wp + 2 * j) * Cin;
          channel_blocks(Cout, [&](auto nv, int64_t co0) {
            constexpr int NV = decltype(nv)::value;
            if (Cin == 1)
              conv_pool_pixel<NV, 1>(x00, wp, bp, co0, Cout, Wp, 1, KH, KW, relu, o, a);
            else if (Cin == 3)
              conv_pool_pixel<NV, 3>(x00, wp, bp, co0, Cout, Wp * 3, 3, KH, KW, relu, o, a);
            else
              conv_pool_pixel<NV, 0>(x00, wp, bp, co0, Cout, Wp * Cin, Cin, KH, KW, relu, o, a);
          });
          continue;
        }
#endif
        conv4_scalar(xp, wp, bp, acc.data(), valid, n, i, j, Hp, Wp, Cin, KH, KW, Cout);
        pick(acc.data(), valid, Cout, vec, relu, o, a);
      }
    }
  });
  (void)vec;
  return {out, arg};
}

std::vector<at::Tensor> conv_pool_backward(const at::Tensor& x, const at::Tensor& arg,
                                           const at::Tensor& grad, int64_t KH, int64_t KW) {
  TORCH_CHECK(grad.is_contiguous() && arg.is_contiguous() && x.is_contiguous(), "contiguous only");
  const int64_t N = x.size(0), Hp = x.size(1), Wp = x.size(2), Cin = x.size(3);
  const int64_t Ho = grad.size(1), Wo = grad.size(2), Cout = grad.size(3);
  const int64_t Hc = Hp - KH + 1, Wc = Wp - KW + 1;
  const int64_t wsize = KH * KW * Cin * Cout;
  ThreadGrads sums(wsize, Cout);
  const float* xp = x.data_ptr<float>();
  const float* gp = grad.data_ptr<float>();
  const uint8_t* ap = arg.data_ptr<uint8_t>();
  const bool vec = vector_path(Cout);
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> gw(wsize, 0.f), gb(Cout, 0.f), gm(4 * Cout);
    for (int64_t n = begin; n < end; ++n) {
      for (int64_t i = 0; i < Ho; ++i) {
        int64_t j = 0;
#if defined(__AVX512F__)
        if (gray_3x3_rows(Cin, KH, KW, Cout) && 2 * i + 1 < Hc) {
          const int64_t full = std::min(Wo, Wc / 2);
          const int64_t at_ = (n * Ho + i) * Wo * Cout;
          const float* x0row = xp + (n * Hp + 2 * i) * Wp;
          if (Cout == 16)
            conv_pool_row_c1_backward<1, 3>(x0row, Wp, gp + at_, ap + at_, 0, full, gw.data(), gb.data());
          else
            conv_pool_row_c1_backward<2, 3>(x0row, Wp, gp + at_, ap + at_, 0, full, gw.data(), gb.data());
          j = full;
        }
#endif
        for (; j < Wo; ++j) {
          const float* g = gp + ((n * Ho + i) * Wo + j) * Cout;
          const uint8_t* a = ap + ((n * Ho + i) * Wo + j) * Cout;
          const int valid = valid_offsets(i, j, Hc, Wc);
#if defined(__AVX512F__)
          const float* x00 = xp + ((n * Hp + 2 * i) * Wp + 2 * j) * Cin;
          if (vec && valid == 15) {
            channel_blocks(Cout, [&](auto nv, int64_t co0) {
              constexpr int NV = decltype(nv)::value;
              float* gwd = gw.data();
              float* gbd = gb.data();
              if (Cin == 1)
                conv_pool_pixel_backward<NV, 1>(x00, g, a, gwd, gbd, co0, Cout, Wp, 1, KH, KW);
              else if (Cin == 3)
                conv_pool_pixel_backward<NV, 3>(x00, g, a, gwd, gbd, co0, Cout, Wp * 3, 3, KH, KW);
              else
                conv_pool_pixel_backward<NV, 0>(x00, g, a, gwd, gbd, co0, Cout, Wp * Cin, Cin,
                                                KH, KW);
            });
            continue;
          }
#endif
          for (int off = 0; off < 4; ++off) {
            float* __restrict__ m = gm.data() + off * Cout;
            for (int64_t co = 0; co < Cout; ++co) m[co] = a[co] == off ? g[co] : 0.f;
            for (int64_t co = 0; co < Cout; ++co) gb[co] += m[co];
            if (!(valid >> off & 1)) continue;
            const int64_t r = 2 * i + (off >> 1), c = 2 * j + (off & 1);
            for (int64_t ky = 0; ky < KH; ++ky)
              for (int64_t kx = 0; kx < KW; ++kx) {
                const float* __restrict__ xv = xp + ((n * Hp + r + ky) * Wp + c + kx) * Cin;
                float* __restrict__ gwv = gw.data() + (ky * KW + kx) * Cin * Cout;
                for (int64_t ci = 0; ci < Cin; ++ci) {
                  const float v = xv[ci];
                  float* __restrict__ gr = gwv + ci * Cout;
#pragma omp simd
                  for (int64_t co = 0; co < Cout; ++co) gr[co] += v * m[co];
                }
              }
          }
        }
      }
    }
    sums.add(std::move(gw), std::move(gb));
  });
  (void)vec;
  return sums.tensors({KH, KW, Cin, Cout}, x.options());
}

// 2x2/stride-2 max pooling (+ ReLU) of x (N, H, W, C) into (N, Ho, Wo, C).
std::vector<at::Tensor> pool_forward(const at::Tensor& x, int64_t Ho, int64_t Wo, bool relu,
                                     bool want_arg) {
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == at::kFloat && x.is_contiguous(),
              "expected a contiguous float32 (N, H, W, C) tensor");
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  auto pooled = pooled_outputs(x, H, W, Ho, Wo, C, want_arg);
  auto out = pooled[0], arg = pooled[1];
  const float* xp = x.data_ptr<float>();
  float* op = out.data_ptr<float>();
  uint8_t* ap = want_arg ? arg.data_ptr<uint8_t>() : nullptr;
  const bool vec = vector_path(C);
  at::parallel_for(0, N * Ho, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> acc(4 * C);
    for (int64_t nr = begin; nr < end; ++nr) {
      const int64_t n = nr / Ho, i = nr % Ho;
      for (int64_t j = 0; j < Wo; ++j) {
        const int64_t at_ = ((n * Ho + i) * Wo + j) * C;
        const int valid = valid_offsets(i, j, H, W);
        const float* x00 = xp + ((n * H + 2 * i) * W + 2 * j) * C;
#if defined(__AVX512F__)
        if (vec) {  // a missing pixel (ceil mode) reads as -inf: it never wins
          const __m512 none = _mm512_set1_ps(-INFINITY);
          for (int64_t c = 0; c < C; c += 16) {
            __m512 four[4];
            for (int off = 0; off < 4; ++off)
              four[off] = valid >> off & 1
                              ? _mm512_loadu_ps(x00 + ((off >> 1) * W + (off & 1)) * C + c)
                              : none;
            pick16(four, relu, op + at_ + c, ap ? ap + at_ + c : nullptr);
          }
          continue;
        }
#endif
        for (int off = 0; off < 4; ++off) {
          if (!(valid >> off & 1)) continue;
          const float* src = x00 + ((off >> 1) * W + (off & 1)) * C;
          std::copy(src, src + C, acc.data() + off * C);
        }
        pick(acc.data(), valid, C, false, relu, op + at_, ap ? ap + at_ : nullptr);
      }
    }
  });
  (void)vec;
  return {out, arg};
}

// The input gradient of pool_forward: each input pixel gets its window's gradient if it
// won, else 0. Rows/columns that no window covers get 0.
at::Tensor pool_backward(const at::Tensor& grad, const at::Tensor& arg, int64_t H, int64_t W) {
  TORCH_CHECK(grad.is_contiguous() && arg.is_contiguous(), "contiguous only");
  const int64_t N = grad.size(0), Ho = grad.size(1), Wo = grad.size(2), C = grad.size(3);
  auto gin = at::empty({N, H, W, C}, grad.options());
  const float* gp = grad.data_ptr<float>();
  const uint8_t* ap = arg.data_ptr<uint8_t>();
  float* ip = gin.data_ptr<float>();
  const int64_t Hcov = std::min(H, 2 * Ho), Wcov = std::min(W, 2 * Wo);
  at::parallel_for(0, N * H, 16, [&](int64_t begin, int64_t end) {
    for (int64_t nr = begin; nr < end; ++nr) {
      const int64_t n = nr / H, r = nr % H;
      float* row = ip + (n * H + r) * W * C;
      if (r >= Hcov) { std::fill(row, row + W * C, 0.f); continue; }
      const int64_t i = r / 2;
      const int dy = static_cast<int>(r % 2);
      for (int64_t c_ = 0; c_ < Wcov; ++c_) {
        const int64_t j = c_ / 2;
        const uint8_t off = static_cast<uint8_t>(dy * 2 + c_ % 2);
        const float* g = gp + ((n * Ho + i) * Wo + j) * C;
        const uint8_t* a = ap + ((n * Ho + i) * Wo + j) * C;
        float* dst = row + c_ * C;
#pragma omp simd
        for (int64_t k = 0; k < C; ++k) dst[k] = a[k] == off ? g[k] : 0.f;
      }
      if (Wcov < W) std::fill(row + Wcov * C, row + W * C, 0.f);
    }
  });
  return gin;
}

// ---------------------------------------------------------------------------------------
// norm_pool_forward / norm_pool_backward: an activation (ReLU or none), BatchNormalization
// with the batch's statistics, and 2x2/stride-2 max pooling, on the convolution's output
// x (N, H, W, C). Separately they read and write the full-resolution map six times forward
// (activation, statistics, normalized output, pooling) and eight times backward (the
// pooling's scattered gradient, batch norm's two passes, the activation's mask); here the
// forward reads x twice and writes only the pooled map, and the backward reads x twice
// (the winners' sums, then the input gradient) and writes the input gradient once.
// Written with portable loops (`omp simd`): both builds vectorize them.
namespace {

// The activation, fixed at compile time: a run-time flag in these loops stopped the
// compiler vectorizing them (8x slower). max(NaN, 0) is NaN, as torch's relu.
template <bool RELU>
inline float act(float v) {
  if constexpr (RELU) return v < 0.f ? 0.f : v;  // a value select (std::max returns a reference)
  else return v;
}

template <class F>
inline void with_relu(bool relu, F&& f) {
  if (relu) f(std::true_type{});
  else f(std::false_type{});
}

// Per-channel sums over rows [0, rows) of a (rows, C) map, in double, added up per thread
// and then in thread order (the same result for the same thread count).
struct ChannelSums {
  std::vector<std::vector<double>> a, b;
  explicit ChannelSums(int64_t C) : a(at::get_num_threads(), std::vector<double>(C, 0.0)),
                                    b(at::get_num_threads(), std::vector<double>(C, 0.0)) {}
  double* first() { return a[at::get_thread_num()].data(); }
  double* second() { return b[at::get_thread_num()].data(); }
  void total(int64_t C, std::vector<double>& sa, std::vector<double>& sb) const {
    sa.assign(C, 0.0);
    sb.assign(C, 0.0);
    for (size_t t = 0; t < a.size(); ++t)
      for (int64_t c = 0; c < C; ++c) sa[c] += a[t][c], sb[c] += b[t][c];
  }
};

}  // namespace

// -> out (N, Ho, Wo, C), arg (winners, as pool_forward's; undefined unless want_arg),
//    mean (C), var (C): the batch's mean and biased variance of act(x), as Keras normalizes.
std::vector<at::Tensor> norm_pool_forward(const at::Tensor& x, const at::Tensor& gamma,
                                          const at::Tensor& beta, double eps, int64_t Ho,
                                          int64_t Wo, bool relu, bool want_arg) {
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == at::kFloat && x.is_contiguous(),
              "expected a contiguous float32 (N, H, W, C) tensor");
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  auto pooled = pooled_outputs(x, H, W, Ho, Wo, C, want_arg);
  auto out = pooled[0], arg = pooled[1];
  const float* xp = x.data_ptr<float>();
  ChannelSums sums(C);
  with_relu(relu, [&](auto R) {
    at::parallel_for(0, N * H, 16, [&](int64_t begin, int64_t end) {
      double* s1 = sums.first();
      double* s2 = sums.second();
      // a row's sums in float in local arrays (that nothing else can alias, so the loop
      // vectorizes: accumulating straight into the double sums stayed scalar), then
      // added to the double sums once per row
      constexpr int64_t CB = 64;
      float t1[CB], t2[CB];
      for (int64_t r = begin; r < end; ++r)
        for (int64_t c0 = 0; c0 < C; c0 += CB) {
          const int64_t cb = std::min(CB, C - c0);
          std::fill_n(t1, CB, 0.f);
          std::fill_n(t2, CB, 0.f);
          for (int64_t k = 0; k < W; ++k) {
            const float* v = xp + (r * W + k) * C + c0;
#pragma omp simd
            for (int64_t c = 0; c < cb; ++c) {
              const float a = act<decltype(R)::value>(v[c]);
              t1[c] += a;
              t2[c] += a * a;
            }
          }
          for (int64_t c = 0; c < cb; ++c) s1[c0 + c] += t1[c], s2[c0 + c] += t2[c];
        }
    });
  });
  std::vector<double> s1, s2;
  sums.total(C, s1, s2);
  const double M = static_cast<double>(N * H * W);
  auto mean = at::empty({C}, x.options()), var = at::empty({C}, x.options());
  std::vector<float> scale(C), shift(C);
  const float* gp = gamma.numel() ? gamma.data_ptr<float>() : nullptr;
  const float* bp = beta.numel() ? beta.data_ptr<float>() : nullptr;
  for (int64_t c = 0; c < C; ++c) {
    const double m = s1[c] / M, v = std::max(s2[c] / M - m * m, 0.0);
    mean.data_ptr<float>()[c] = static_cast<float>(m);
    var.data_ptr<float>()[c] = static_cast<float>(v);
    // from the float variance, as norm_pool_backward recomputes it
    const float inv = static_cast<float>(1.0 / std::sqrt(static_cast<double>(static_cast<float>(v)) + eps));
    scale[c] = gp ? gp[c] * inv : inv;
    shift[c] = (bp ? bp[c] : 0.f) - static_cast<float>(m) * scale[c];
  }
  float* op = out.data_ptr<float>();
  uint8_t* ap = want_arg ? arg.data_ptr<uint8_t>() : nullptr;
  const float* sc = scale.data();
  const float* sh = shift.data();
  with_relu(relu, [&](auto R) {
    at::parallel_for(0, N * Ho, 16, [&](int64_t begin, int64_t end) {
      // the winners as int32 first: a select on bytes beside floats did not vectorize
      std::vector<int32_t> idx(C);
      int32_t* __restrict__ ix = idx.data();
      for (int64_t nr = begin; nr < end; ++nr) {
        const int64_t n = nr / Ho, i = nr % Ho;
        for (int64_t j = 0; j < Wo; ++j) {
          const int valid = valid_offsets(i, j, H, W);
          const float* x00 = xp + ((n * H + 2 * i) * W + 2 * j) * C;
          float* __restrict__ o = op + ((n * Ho + i) * Wo + j) * C;
          bool started = false;
          for (int off = 0; off < 4; ++off) {
            if (!(valid >> off & 1)) continue;
            const float* __restrict__ v = x00 + ((off >> 1) * W + (off & 1)) * C;
            if (!started) {
#pragma omp simd
              for (int64_t c = 0; c < C; ++c) {
                o[c] = act<decltype(R)::value>(v[c]) * sc[c] + sh[c];
                ix[c] = off;
              }
              started = true;
              continue;
            }
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) {
              const float y = act<decltype(R)::value>(v[c]) * sc[c] + sh[c];
              const bool take = y > o[c] || y != y;
              o[c] = take ? y : o[c];
              ix[c] = take ? off : ix[c];
            }
          }
          if (ap) {
            uint8_t* __restrict__ a = ap + ((n * Ho + i) * Wo + j) * C;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) a[c] = static_cast<uint8_t>(ix[c]);
          }
        }
      }
    });
  });
  return {out, arg, mean, var};
}

// The gradients of norm_pool_forward from the pooled gradient g (N, Ho, Wo, C) and its
// winners: only a window's winner gets g, batch norm spreads (g - mean(g) - xhat *
// mean(g xhat)) * gamma / sigma over every pixel, and the activation masks it.
// -> gx (N, H, W, C), ggamma (C), gbeta (C).
std::vector<at::Tensor> norm_pool_backward(const at::Tensor& x, const at::Tensor& arg,
                                           const at::Tensor& grad, const at::Tensor& mean,
                                           const at::Tensor& var, const at::Tensor& gamma,
                                           double eps, bool relu) {
  TORCH_CHECK(x.is_contiguous() && arg.is_contiguous() && grad.is_contiguous(),
              "contiguous only");
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t Ho = grad.size(1), Wo = grad.size(2);
  const float* xp = x.data_ptr<float>();
  const float* gp = grad.data_ptr<float>();
  const uint8_t* ap = arg.data_ptr<uint8_t>();
  std::vector<float> mu(C), inv(C), scale(C);
  for (int64_t c = 0; c < C; ++c) {
    mu[c] = mean.data_ptr<float>()[c];
    inv[c] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(var.data_ptr<float>()[c]) + eps));
    scale[c] = gamma.numel() ? gamma.data_ptr<float>()[c] * inv[c] : inv[c];
  }
  // sum(g) and sum(g * xhat) over the winners: every other pixel's gradient is 0
  ChannelSums sums(C);
  const float* mup = mu.data();
  const float* invp = inv.data();
  with_relu(relu, [&](auto R) {
  at::parallel_for(0, N * Ho, 16, [&](int64_t begin, int64_t end) {
    double* sg = sums.first();
    double* sgx = sums.second();
    // per pooled row in float in local arrays, then into the double sums (as the forward's
    // statistics: the loop vectorizes)
    constexpr int64_t CB = 64;
    float t1[CB], t2[CB], win[CB];
    for (int64_t nr = begin; nr < end; ++nr) {
      const int64_t n = nr / Ho, i = nr % Ho;
      for (int64_t c0 = 0; c0 < C; c0 += CB) {
        const int64_t cb = std::min(CB, C - c0);
        std::fill_n(t1, CB, 0.f);
        std::fill_n(t2, CB, 0.f);
        for (int64_t j = 0; j < Wo; ++j) {
          const int64_t p = (nr * Wo + j) * C + c0;
          const uint8_t* a = ap + p;
          const float* x0 = xp + ((n * H + 2 * i) * W + 2 * j) * C + c0;
          if (valid_offsets(i, j, H, W) == 15) {  // the four pixels exist: selects
            const float *x1 = x0 + C, *x2 = x0 + W * C, *x3 = x2 + C;
#pragma omp simd
            for (int64_t c = 0; c < cb; ++c)
              win[c] = a[c] == 0 ? x0[c] : a[c] == 1 ? x1[c] : a[c] == 2 ? x2[c] : x3[c];
          } else {
            for (int64_t c = 0; c < cb; ++c)
              win[c] = x0[((a[c] >> 1) * W + (a[c] & 1)) * C + c];
          }
          const float* g = gp + p;
#pragma omp simd
          for (int64_t c = 0; c < cb; ++c) {
            t1[c] += g[c];
            t2[c] += g[c] * ((act<decltype(R)::value>(win[c]) - mup[c0 + c]) * invp[c0 + c]);
          }
        }
        for (int64_t c = 0; c < cb; ++c) sg[c0 + c] += t1[c], sgx[c0 + c] += t2[c];
      }
    }
  });
  });
  std::vector<double> sg, sgx;
  sums.total(C, sg, sgx);
  auto gx = at::empty({N, H, W, C}, x.options());
  auto ggamma = at::empty({C}, x.options()), gbeta = at::empty({C}, x.options());
  const double M = static_cast<double>(N * H * W);
  std::vector<float> k1(C), k2(C);
  for (int64_t c = 0; c < C; ++c) {
    gbeta.data_ptr<float>()[c] = static_cast<float>(sg[c]);
    ggamma.data_ptr<float>()[c] = static_cast<float>(sgx[c]);
    k1[c] = static_cast<float>(sg[c] / M);
    k2[c] = static_cast<float>(sgx[c] / M);
  }
  float* gxp = gx.data_ptr<float>();
  const float* k1p = k1.data();
  const float* k2p = k2.data();
  const float* scp = scale.data();
  const int64_t Hcov = std::min(H, 2 * Ho), Wcov = std::min(W, 2 * Wo);
  with_relu(relu, [&](auto R) {
  at::parallel_for(0, N * H, 16, [&](int64_t begin, int64_t end) {
    for (int64_t nr = begin; nr < end; ++nr) {
      const int64_t n = nr / H, r = nr % H;
      for (int64_t k = 0; k < W; ++k) {
        const float* v = xp + (nr * W + k) * C;
        float* d = gxp + (nr * W + k) * C;
        const bool covered = r < Hcov && k < Wcov;
        const int64_t p = covered ? ((n * Ho + r / 2) * Wo + k / 2) * C : 0;
        const uint8_t off = static_cast<uint8_t>((r % 2) * 2 + k % 2);
        const float* g = gp + p;
        const uint8_t* a = ap + p;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const float y = act<decltype(R)::value>(v[c]);
          const float gy = covered && a[c] == off ? g[c] : 0.f;
          const float t = (gy - k1p[c] - (y - mup[c]) * invp[c] * k2p[c]) * scp[c];
          d[c] = decltype(R)::value && !(v[c] > 0.f) ? 0.f : t;
        }
      }
    }
  });
  });
  return {gx, ggamma, gbeta};
}

// The helpers of conv_then_pool_backward (below): the winners-only backward pass.
#if defined(__AVX512F__)
// The weight gradient of one output channel over its winners in one image, for the
// 16*NV input channels from c0 (K*K*NV accumulators in registers). Cin: the full channel
// count (the stride of x and of the kernel's rows); wider layers are done in such slices.
template <int NV, int K>
inline void sparse_weight_grad(const float* __restrict__ xn, int64_t Wp, int64_t Cin, int64_t c0,
                               float* __restrict__ gwc, const int32_t* __restrict__ at,
                               const float* __restrict__ gv, int64_t hits) {
  __m512 s[K * K][NV];
  for (int t = 0; t < K * K; ++t)
    for (int v = 0; v < NV; ++v) s[t][v] = _mm512_loadu_ps(gwc + t * Cin + c0 + 16 * v);
  for (int64_t h = 0; h < hits; ++h) {
    const __m512 gg = _mm512_set1_ps(gv[h]);
    const float* x0 = xn + at[h] + c0;
    for (int ky = 0; ky < K; ++ky)
      for (int kx = 0; kx < K; ++kx)
        for (int v = 0; v < NV; ++v)
          s[ky * K + kx][v] = _mm512_fmadd_ps(
              gg, _mm512_loadu_ps(x0 + (ky * Wp + kx) * Cin + 16 * v), s[ky * K + kx][v]);
  }
  for (int t = 0; t < K * K; ++t)
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(gwc + t * Cin + c0 + 16 * v, s[t][v]);
}

// The input gradient of one pooling window's winners at one offset (the same input
// pixel for all of them): sum over those output channels of g * w[co], for the 16*NV
// input channels from c0, summed in registers and added to gx once. Per winner that is 18
// loads and FMAs instead of 18 read-modify-writes of gx (stores were the limit: a winner
// cost ~4x its FMAs).
template <int NV, int K>
inline void grouped_input_grad(float* __restrict__ gx0, int64_t Wp, int64_t Cin, int64_t c0,
                               const float* __restrict__ wp, int64_t wc,
                               const int32_t* __restrict__ cos, const float* __restrict__ gs,
                               int64_t count) {
  __m512 acc[K * K][NV];
  for (int t = 0; t < K * K; ++t)
    for (int v = 0; v < NV; ++v) acc[t][v] = _mm512_setzero_ps();
  for (int64_t h = 0; h < count; ++h) {
    const __m512 gg = _mm512_set1_ps(gs[h]);
    const float* wc0 = wp + cos[h] * wc + c0;
    for (int t = 0; t < K * K; ++t)
      for (int v = 0; v < NV; ++v)
        acc[t][v] = _mm512_fmadd_ps(gg, _mm512_loadu_ps(wc0 + t * Cin + 16 * v), acc[t][v]);
  }
  for (int ky = 0; ky < K; ++ky)
    for (int kx = 0; kx < K; ++kx)
      for (int v = 0; v < NV; ++v) {
        float* d = gx0 + (ky * Wp + kx) * Cin + c0 + 16 * v;
        _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), acc[ky * K + kx][v]));
      }
}

// f(nv, c0) over the input channels in slices of 32 (then one of 16): 2 x 9 accumulators
// fit the 32 vector registers with room for the loads; 4 x 9 would not.
template <class F>
inline void input_slices(int64_t Cin, F&& f) {
  int64_t c0 = 0;
  for (; c0 + 32 <= Cin; c0 += 32) f(std::integral_constant<int, 2>{}, c0);
  if (c0 < Cin) f(std::integral_constant<int, 1>{}, c0);
}

// One image's winners listed per output channel: the input offset of each winner's kernel
// window and its gradient. Per-thread buffers, reused from image to image.
struct WinnerLists {
  std::vector<int32_t> at;
  std::vector<float> g;
  std::vector<int64_t> first;   // channel c's winners: [first[c], first[c + 1])
  std::vector<int64_t> pos;
  std::vector<uint64_t> masks;  // per (window, 64-channel word): the channels that won there
  std::vector<float> bias;
  std::vector<int32_t> group_co;  // one window's winners by offset: channel and gradient
  std::vector<float> group_g;
};

// Lists the winners of one image (gradients gn, winners an: (Ho, Wo, Cout)) and adds its
// bias gradient to gb. A window's winners are found 16 channels at a time and then walked
// by their bits: testing each (window, channel) with a branch mispredicted on ~40% of them
// cost as much as the weight gradient.
inline void list_winners(WinnerLists& L, const float* gn, const uint8_t* an, int64_t Ho,
                         int64_t Wo, int64_t Cout, int64_t Wp, int64_t Cin, float* gb) {
  const int64_t HW = Ho * Wo, words = (Cout + 63) / 64;
  L.masks.resize(HW * words);
  L.first.assign(Cout + 1, 0);
  const __m512i four = _mm512_set1_epi32(4);
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t p = 0; p < HW; ++p) {
    const float* g = gn + p * Cout;
    const uint8_t* a = an + p * Cout;
    for (int64_t q = 0; q < words; ++q) {
      uint64_t m = 0;
      for (int64_t c0 = q * 64; c0 < std::min(Cout, q * 64 + 64); c0 += 16) {
        const __mmask16 lanes =
            Cout - c0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (Cout - c0)) - 1);
        const __m512i av = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(lanes, a + c0));
        const __m512 gv = _mm512_maskz_loadu_ps(lanes, g + c0);
        // won: offset 0..3 (4 = clipped by ReLU) and a gradient that is not 0 (NaN counts)
        const __mmask16 won = _mm512_mask_cmplt_epi32_mask(lanes, av, four) &
                              _mm512_cmp_ps_mask(gv, zero, _CMP_NEQ_UQ);
        m |= static_cast<uint64_t>(won) << (c0 - q * 64);
      }
      L.masks[p * words + q] = m;
      for (uint64_t b = m; b; b &= b - 1) ++L.first[q * 64 + __builtin_ctzll(b) + 1];
    }
  }
  for (int64_t c = 0; c < Cout; ++c) L.first[c + 1] += L.first[c];
  L.at.resize(L.first[Cout]);
  L.g.resize(L.first[Cout]);
  L.pos.assign(L.first.begin(), L.first.end() - 1);
  L.bias.assign(Cout, 0.f);
  const int64_t step[4] = {0, Cin, Wp * Cin, (Wp + 1) * Cin};  // offset 0..3 in the window
  for (int64_t i = 0; i < Ho; ++i)
    for (int64_t j = 0; j < Wo; ++j) {
      const int64_t p = i * Wo + j, base = (2 * i * Wp + 2 * j) * Cin;
      for (int64_t q = 0; q < words; ++q)
        for (uint64_t b = L.masks[p * words + q]; b; b &= b - 1) {
          const int64_t c = q * 64 + __builtin_ctzll(b);
          const float v = gn[p * Cout + c];
          const int64_t h = L.pos[c]++;
          L.at[h] = static_cast<int32_t>(base + step[an[p * Cout + c]]);
          L.g[h] = v;
          L.bias[c] += v;  // in window order, as a scan per channel would add them
        }
    }
  for (int64_t c = 0; c < Cout; ++c) gb[c] += L.bias[c];
}

// One image's gradients: its winners listed once, then the weight gradient channel by
// channel with the image's x in L1, then the input gradient window by window, each
// window's winners grouped by the input pixel they won at (grouped_input_grad).
template <int K>
inline void sparse_image(const float* xn, float* gxn, int64_t Hp, int64_t Wp, int64_t Cin,
                         const float* wp, float* gwp, float* gbp, const float* gn,
                         const uint8_t* an, int64_t Ho, int64_t Wo, int64_t Cout,
                         WinnerLists& L) {
  const int64_t wc = K * K * Cin;
  list_winners(L, gn, an, Ho, Wo, Cout, Wp, Cin, gbp);
  for (int64_t co = 0; co < Cout; ++co) {
    const int64_t h0 = L.first[co], hits = L.first[co + 1] - h0;
    if (hits)
      input_slices(Cin, [&](auto nv, int64_t c0) {
        sparse_weight_grad<decltype(nv)::value, K>(xn, Wp, Cin, c0, gwp + co * wc,
                                                   L.at.data() + h0, L.g.data() + h0, hits);
      });
  }
  if (!gxn) return;
  std::fill(gxn, gxn + Hp * Wp * Cin, 0.f);
  // window by window: its winners grouped by offset (each group reads one input patch)
  const int64_t words = (Cout + 63) / 64;
  const int64_t step[4] = {0, Cin, Wp * Cin, (Wp + 1) * Cin};
  L.group_co.resize(4 * Cout);
  L.group_g.resize(4 * Cout);
  for (int64_t i = 0; i < Ho; ++i)
    for (int64_t j = 0; j < Wo; ++j) {
      const int64_t p = i * Wo + j;
      int64_t count[4] = {0, 0, 0, 0};
      for (int64_t q = 0; q < words; ++q)
        for (uint64_t b = L.masks[p * words + q]; b; b &= b - 1) {
          const int64_t c = q * 64 + __builtin_ctzll(b);
          const int o = an[p * Cout + c];
          const int64_t k = o * Cout + count[o]++;
          L.group_co[k] = static_cast<int32_t>(c);
          L.group_g[k] = gn[p * Cout + c];
        }
      float* gx0 = gxn + (2 * i * Wp + 2 * j) * Cin;
      for (int o = 0; o < 4; ++o)
        if (count[o])
          input_slices(Cin, [&](auto nv, int64_t c0) {
            grouped_input_grad<decltype(nv)::value, K>(gx0 + step[o], Wp, Cin, c0, wp, wc,
                                                       L.group_co.data() + o * Cout,
                                                       L.group_g.data() + o * Cout, count[o]);
          });
    }
}
#endif

// Whether conv_then_pool_backward has its fast path for these sizes (else it is slower
// than a dense backward pass, and the caller should not use it).
bool sparse_backward_fast(int64_t Cin, int64_t KH, int64_t KW, int64_t Ho, int64_t Wo) {
#if defined(__AVX512F__)
  return Cin % 16 == 0 && Cin <= 512 && KH == 3 && KW == 3 && Ho * Wo <= 64 * 64;
#else
  (void)Cin; (void)KH; (void)KW; (void)Ho; (void)Wo;
  return false;
#endif
}

// The gradients of a stride-1 convolution (of the padded input x) followed by 2x2 max
// pooling, straight from the pooled gradient and the winners: only the winning
// convolution output of each window and channel has a gradient (and none where ReLU
// clipped), so the work is one kernel-sized update per (window, channel) that won,
// about a quarter of a dense backward pass, and the full-resolution gradient is never
// written.
//   x (N, Hp, Wp, Cin); w (Cout, KH, KW, Cin); grad, arg (N, Ho, Wo, Cout)
//   -> gx (N, Hp, Wp, Cin) if need_x (else undefined), gw (Cout, KH, KW, Cin), gb (Cout)
std::vector<at::Tensor> conv_then_pool_backward(const at::Tensor& x, const at::Tensor& w,
                                                const at::Tensor& grad, const at::Tensor& arg,
                                                bool need_x) {
  TORCH_CHECK(x.is_contiguous() && w.is_contiguous() && grad.is_contiguous() &&
                  arg.is_contiguous(), "contiguous tensors only");
  const int64_t N = x.size(0), Hp = x.size(1), Wp = x.size(2), Cin = x.size(3);
  const int64_t Cout = w.size(0), KH = w.size(1), KW = w.size(2);
  const int64_t Ho = grad.size(1), Wo = grad.size(2);
  const int64_t wsize = Cout * KH * KW * Cin;
  const bool fast = sparse_backward_fast(Cin, KH, KW, Ho, Wo);
  auto gx = need_x ? at::empty({N, Hp, Wp, Cin}, x.options()) : at::Tensor();
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  const float* gp = grad.data_ptr<float>();
  const uint8_t* ap = arg.data_ptr<uint8_t>();
  float* gxp = need_x ? gx.data_ptr<float>() : nullptr;
  ThreadGrads sums(wsize, Cout);
  const int64_t img = Hp * Wp * Cin, pooled = Ho * Wo * Cout;
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> gw(wsize, 0.f), gb(Cout, 0.f);
    float* __restrict__ gwp = gw.data();
#if defined(__AVX512F__)
    if (fast) {
      WinnerLists lists;
      for (int64_t n = begin; n < end; ++n) {
        float* gxn = gxp ? gxp + n * img : nullptr;
        sparse_image<3>(xp + n * img, gxn, Hp, Wp, Cin, wp, gwp, gb.data(), gp + n * pooled,
                        ap + n * pooled, Ho, Wo, Cout, lists);
      }
    } else
#endif
    for (int64_t n = begin; n < end; ++n) {
      const float* xn = xp + n * img;
      float* gxn = gxp ? gxp + n * img : nullptr;
      const float* gn = gp + n * pooled;
      const uint8_t* an = ap + n * pooled;
      if (gxn) std::fill(gxn, gxn + img, 0.f);
      for (int64_t i = 0; i < Ho; ++i) {
        for (int64_t j = 0; j < Wo; ++j) {
          const float* g = gn + (i * Wo + j) * Cout;
          const uint8_t* a = an + (i * Wo + j) * Cout;
          for (int64_t co = 0; co < Cout; ++co) {
            const int off = a[co];
            const float gv = g[co];
            if (off >= 4 || gv == 0.f) continue;
            gb[co] += gv;
            const int64_t r = 2 * i + (off >> 1), c = 2 * j + (off & 1);
            for (int64_t ky = 0; ky < KH; ++ky) {
              const float* __restrict__ xs = xn + ((r + ky) * Wp + c) * Cin;
              const float* __restrict__ ws = wp + (co * KH + ky) * KW * Cin;
              float* __restrict__ gws = gwp + (co * KH + ky) * KW * Cin;
              const int64_t span = KW * Cin;  // one kernel row: contiguous in x, w and gw
#pragma omp simd
              for (int64_t k = 0; k < span; ++k) gws[k] += gv * xs[k];
              if (gxn) {
                float* __restrict__ gxs = gxn + ((r + ky) * Wp + c) * Cin;
#pragma omp simd
                for (int64_t k = 0; k < span; ++k) gxs[k] += gv * ws[k];
              }
            }
          }
        }
      }
    }
    (void)fast;
    sums.add(std::move(gw), std::move(gb));
  });
  auto g = sums.tensors({Cout, KH, KW, Cin}, x.options());
  return {gx, g[0], g[1]};
}

// ---------------------------------------------------------------------------------------
// 4. winograd_pool_forward: a 3x3 stride-1 convolution by Winograd's F(4x4, 3x3), then
//    2x2 max pooling (+ ReLU). Each 4x4 output tile of F(4x4, 3x3) is exactly four pooling
//    windows, so its sixteen outputs go straight into the max and the full-resolution
//    convolution output is never written. Per tile: V = B'dB of its 6x6 input patch, 36
//    products V[p] x U[p] (U = G g G' of the weights, Cin x Cout each), Y = A'MA (Lavin &
//    Gray's matrices). 4x fewer multiplies than a direct convolution (F(2x2, 3x3): 2.25x);
//    results differ from it by rounding only: the largest error is 2-4e-6 of the largest
//    output on lecture-like data and weights, against 2-4e-7 for F(2x2, 3x3).
//    x (N, Hp, Wp, Cin) padded; w (Cout, 3, 3, Cin); b (Cout) or empty
//    -> out, arg (N, Ho, Wo, Cout) as pool_forward's, of the (Hp-2, Wp-2) convolution.
#if defined(__AVX512F__)
namespace {

// Per-thread scratch buffers that outlive a call: slot k of the calling thread, at least n
// floats, contents undefined. Saves allocating and zero-filling a few hundred KB per call
// (a few percent of the kernel for 128 images; they stay allocated while the thread lives).
float* scratch(int slot, int64_t n) {
  thread_local std::vector<float> buffers[3];
  auto& buf = buffers[slot];
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(n);
  return buf.data();
}

// Image n, tile row i and column j of consecutive tiles (row-major over (N, Ti, Tj)),
// counted rather than divided per tile: a 64-bit division costs tens of cycles.
struct TileCursor {
  int64_t Ti, Tj, n, i, j;
  TileCursor(int64_t tile, int64_t Ti_, int64_t Tj_)
      : Ti(Ti_), Tj(Tj_), n(tile / (Ti_ * Tj_)), i(tile % (Ti_ * Tj_) / Tj_), j(tile % Tj_) {}
  void next() {
    if (++j < Tj) return;
    j = 0;
    if (++i == Ti) i = 0, ++n;
  }
};

constexpr int P = 36;  // points per tile: the 6x6 of F(4x4, 3x3)
constexpr int TB = 6;  // tiles per block: TB x NV accumulators stay in registers
constexpr int SB = 4;  // blocks per group: each U[p] is used for TG tiles while in L1
constexpr int TG = TB * SB;

// Plane strides of V and M, padded by one cache line: unpadded, a tile's planes lay a
// multiple of 4 KB apart, all in one L1 set, and evicted each other (8% of the kernel).
inline int64_t v_stride(int64_t Cp) { return TG * Cp + 16; }
inline int64_t m_stride(int64_t Cout) { return TG * Cout + 16; }

// G (6x3) applied to three vectors: G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
// 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1].
inline void g_rows(__m512 a, __m512 b, __m512 c, __m512* o) {
  const __m512 q = _mm512_set1_ps(0.25f), s = _mm512_set1_ps(-1.f / 6);
  const __m512 e24 = _mm512_set1_ps(1.f / 24), e12 = _mm512_set1_ps(1.f / 12);
  const __m512 e6 = _mm512_set1_ps(1.f / 6);
  const __m512 ac = _mm512_add_ps(a, c);
  o[0] = _mm512_mul_ps(q, a);
  o[1] = _mm512_mul_ps(s, _mm512_add_ps(ac, b));
  o[2] = _mm512_mul_ps(s, _mm512_sub_ps(ac, b));
  const __m512 even = _mm512_fmadd_ps(e24, a, _mm512_mul_ps(e6, c));
  o[3] = _mm512_fmadd_ps(e12, b, even);
  o[4] = _mm512_fnmadd_ps(e12, b, even);
  o[5] = c;
}

// U[p][ci][co] = (G g G')[p] for every (co, ci). w (Cout, 3, 3, Cin): the memory of a
// channels-last conv weight, so the layer passes its weight without a copy. 16 output
// channels at a time, one per lane (gathered), so that every plane of U is written 16
// floats at a time, in order.
void winograd_weights(const float* w, int64_t Cin, int64_t Cout, float* U) {
  const __m512i lane = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
      _mm512_set1_epi32(static_cast<int>(9 * Cin)));
  for (int64_t co0 = 0; co0 < Cout; co0 += 16)
    for (int64_t ci = 0; ci < Cin; ++ci) {
      const float* g = w + co0 * 9 * Cin + ci;
      __m512 t[3][6];  // t[k] = G times column k of g
      for (int k = 0; k < 3; ++k)
        g_rows(_mm512_i32gather_ps(lane, g + k * Cin, 4),
               _mm512_i32gather_ps(lane, g + (3 + k) * Cin, 4),
               _mm512_i32gather_ps(lane, g + (6 + k) * Cin, 4), t[k]);
      for (int r = 0; r < 6; ++r) {
        __m512 u[6];
        g_rows(t[0][r], t[1][r], t[2][r], u);
        for (int k = 0; k < 6; ++k)
          _mm512_storeu_ps(U + ((r * 6 + k) * Cin + ci) * Cout + co0, u[k]);
      }
    }
}

// B' (6x6) applied to six vectors: B' = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
// 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1].
inline void bt_rows(const __m512* d, __m512* o) {
  const __m512 four = _mm512_set1_ps(4.f), five = _mm512_set1_ps(5.f);
  const __m512 two = _mm512_set1_ps(2.f);
  const __m512 a = _mm512_sub_ps(d[4], d[2]);        // d4 - d2
  const __m512 b = _mm512_sub_ps(d[3], d[1]);        // d3 - d1
  const __m512 c = _mm512_fnmadd_ps(four, d[2], d[4]);  // d4 - 4 d2
  const __m512 e = _mm512_fnmadd_ps(four, d[1], d[3]);  // d3 - 4 d1
  o[0] = _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4]));
  o[1] = _mm512_add_ps(c, e);
  o[2] = _mm512_sub_ps(c, e);
  o[3] = _mm512_fmadd_ps(two, b, a);
  o[4] = _mm512_fnmadd_ps(two, b, a);
  o[5] = _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5]));
}

// V[p][t][c] = (B' d B)[p] of tile t's 6x6 patch at (r0, c0), zeros outside the input
// (INSIDE: the patch is inside and Cin a multiple of 16, so no bounds and no masks).
// Cp = Cin rounded up to 16 (tail lanes 0).
template <bool INSIDE>
inline void winograd_input(const float* xn, int64_t Hp, int64_t Wp, int64_t Cin, int64_t Cp,
                           int64_t r0, int64_t c0, int t, float* V) {
  const int64_t vs = v_stride(Cp);
  for (int64_t c = 0; c < Cp; c += 16) {
    const __mmask16 m = Cin - c >= 16 ? 0xFFFF : (__mmask16)((1u << (Cin - c)) - 1);
    __m512 e[6][6];  // e[k] = B' times column k of the patch
    for (int k = 0; k < 6; ++k) {
      __m512 d[6];
      for (int r = 0; r < 6; ++r) {
        const float* p = xn + ((r0 + r) * Wp + c0 + k) * Cin + c;
        if (INSIDE) d[r] = _mm512_loadu_ps(p);
        else d[r] = (r0 + r < Hp && c0 + k < Wp) ? _mm512_maskz_loadu_ps(m, p) : _mm512_setzero_ps();
      }
      bt_rows(d, e[k]);
    }
    for (int r = 0; r < 6; ++r) {
      const __m512 row[6] = {e[0][r], e[1][r], e[2][r], e[3][r], e[4][r], e[5][r]};
      __m512 v[6];
      bt_rows(row, v);
      float* o = V + (r * 6) * vs + t * Cp + c;
      for (int k = 0; k < 6; ++k) _mm512_storeu_ps(o + k * vs, v[k]);
    }
  }
}

// M[p][t][co0 .. co0+16NV) = sum_c V[p][t][c] U[p][c][co] for the group's first nb*TB
// tiles, TB at a time (TB x NV accumulators in registers). p is the outer loop, so each
// U[p] (Cin x 16NV floats) is read from L1 for all the group's tiles, not from L2 per block.
template <int NV>
inline void winograd_products(const float* __restrict__ V, const float* __restrict__ U,
                              int64_t Cin, int64_t Cp, int64_t Cout, int64_t co0, int nb,
                              float* __restrict__ M) {
  const int64_t vs = v_stride(Cp), ms = m_stride(Cout);
  for (int p = 0; p < P; ++p) {
    const float* u = U + p * Cin * Cout + co0;
    for (int blk = 0; blk < nb; ++blk) {
      const float* v = V + p * vs + blk * TB * Cp;
      __m512 acc[TB][NV];
      for (int t = 0; t < TB; ++t)
        for (int k = 0; k < NV; ++k) acc[t][k] = _mm512_setzero_ps();
      for (int64_t c = 0; c < Cin; ++c) {
        __m512 uk[NV];
        for (int k = 0; k < NV; ++k) uk[k] = _mm512_loadu_ps(u + c * Cout + 16 * k);
        for (int t = 0; t < TB; ++t) {
          const __m512 vt = _mm512_set1_ps(v[t * Cp + c]);
          for (int k = 0; k < NV; ++k) acc[t][k] = _mm512_fmadd_ps(vt, uk[k], acc[t][k]);
        }
      }
      float* mo = M + p * ms + blk * TB * Cout + co0;
      for (int t = 0; t < TB; ++t)
        for (int k = 0; k < NV; ++k) _mm512_storeu_ps(mo + t * Cout + 16 * k, acc[t][k]);
    }
  }
}

// A' (4x6) applied to six vectors: A' = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0;
// 0 1 -1 8 -8 1].
inline void at_rows(const __m512* m, __m512* o) {
  const __m512 two = _mm512_set1_ps(2.f), four = _mm512_set1_ps(4.f);
  const __m512 eight = _mm512_set1_ps(8.f);
  const __m512 s12 = _mm512_add_ps(m[1], m[2]), d12 = _mm512_sub_ps(m[1], m[2]);
  const __m512 s34 = _mm512_add_ps(m[3], m[4]), d34 = _mm512_sub_ps(m[3], m[4]);
  o[0] = _mm512_add_ps(_mm512_add_ps(m[0], s12), s34);
  o[1] = _mm512_fmadd_ps(two, d34, d12);
  o[2] = _mm512_fmadd_ps(four, s34, s12);
  o[3] = _mm512_add_ps(_mm512_fmadd_ps(eight, d34, d12), m[5]);
}

// The sixteen outputs of tile t (A' M A) plus bias, pooled into its four windows
// (pooled rows 2i, 2i+1 and columns 2j, 2j+1 of image n; those outside (Ho, Wo) skipped).
inline void winograd_output(const float* M, int64_t Cout, int t, const float* bias, int64_t i,
                            int64_t j, int64_t H, int64_t W, int64_t Ho, int64_t Wo, bool relu,
                            float* on, uint8_t* an) {
  const __m512 none = _mm512_set1_ps(-INFINITY);
  const int64_t ms = m_stride(Cout);
  for (int64_t co = 0; co < Cout; co += 16) {
    const float* mt = M + t * Cout + co;
    __m512 s[6][4];  // s[k] = A' times column k of M
    for (int k = 0; k < 6; ++k) {
      __m512 col[6];
      for (int r = 0; r < 6; ++r) col[r] = _mm512_loadu_ps(mt + (r * 6 + k) * ms);
      at_rows(col, s[k]);
    }
    const __m512 bv = bias ? _mm512_loadu_ps(bias + co) : _mm512_setzero_ps();
    __m512 y[4][4];
    for (int r = 0; r < 4; ++r) {
      const __m512 row[6] = {s[0][r], s[1][r], s[2][r], s[3][r], s[4][r], s[5][r]};
      at_rows(row, y[r]);
      for (int k = 0; k < 4; ++k) y[r][k] = _mm512_add_ps(y[r][k], bv);
    }
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {
        const int64_t pi = 2 * i + a, pj = 2 * j + b;
        if (pi >= Ho || pj >= Wo) continue;
        const int valid = valid_offsets(pi, pj, H, W);
        __m512 four[4];
        for (int off = 0; off < 4; ++off)
          four[off] = valid >> off & 1 ? y[2 * a + (off >> 1)][2 * b + (off & 1)] : none;
        const int64_t at_ = (pi * Wo + pj) * Cout + co;
        pick16(four, relu, on + at_, an ? an + at_ : nullptr);
      }
  }
}

}  // namespace
#endif

// Whether winograd_pool_forward runs for this layer (3x3, Cout a multiple of 16, AVX-512).
bool winograd_fits(int64_t Cin, int64_t KH, int64_t KW, int64_t Cout) {
#if defined(__AVX512F__)
  return KH == 3 && KW == 3 && Cout % 16 == 0 && Cin >= 1;
#else
  (void)Cin; (void)KH; (void)KW; (void)Cout;
  return false;
#endif
}

std::vector<at::Tensor> winograd_pool_forward(const at::Tensor& x, const at::Tensor& w,
                                              const at::Tensor& b, int64_t Ho, int64_t Wo,
                                              bool relu, bool want_arg) {
  TORCH_CHECK(x.dim() == 4 && w.dim() == 4 && x.is_contiguous() && w.is_contiguous() &&
                  x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat,
              "expected contiguous float32 x (N,H,W,C) and w (Cout,3,3,Cin)");
  const int64_t N = x.size(0), Hp = x.size(1), Wp = x.size(2), Cin = x.size(3);
  const int64_t Cout = w.size(0);
  TORCH_CHECK(w.size(3) == Cin, "channel mismatch");
  TORCH_CHECK(winograd_fits(Cin, w.size(1), w.size(2), Cout), "no Winograd path for this layer");
  const int64_t H = Hp - 2, W = Wp - 2;  // conv output size
  auto pooled = pooled_outputs(x, H, W, Ho, Wo, Cout, want_arg);
  auto out = pooled[0], arg = pooled[1];
#if defined(__AVX512F__)
  const int64_t Cp = (Cin + 15) / 16 * 16;
  const bool vec_cin = Cin % 16 == 0;
  float* const U = scratch(0, P * Cin * Cout);  // every entry written below
  winograd_weights(w.data_ptr<float>(), Cin, Cout, U);
  const float* xp = x.data_ptr<float>();
  const float* bp = b.numel() ? b.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  uint8_t* ap = want_arg ? arg.data_ptr<uint8_t>() : nullptr;
  const int64_t Ti = (Ho + 1) / 2, Tj = (Wo + 1) / 2;  // tiles of 2x2 pooled windows
  const int64_t tiles = N * Ti * Tj, groups = (tiles + TG - 1) / TG;
  at::parallel_for(0, groups, 1, [&](int64_t begin, int64_t end) {
    // not zero-filled: every entry of V a group uses, and of M the output reads, is written
    float* const V = scratch(1, P * v_stride(Cp));
    float* const M = scratch(2, P * m_stride(Cout));
    for (int64_t grp = begin; grp < end; ++grp) {
      const int64_t t0 = grp * TG;
      const int nt = static_cast<int>(std::min<int64_t>(TG, tiles - t0));
      const int nb = (nt + TB - 1) / TB;
      TileCursor in(t0, Ti, Tj);
      for (int t = 0; t < nb * TB; ++t, in.next()) {
        if (t >= nt) {  // past the last tile: zeros, results dropped
          for (int p = 0; p < P; ++p) std::fill_n(V + p * v_stride(Cp) + t * Cp, Cp, 0.f);
          continue;
        }
        const int64_t r0 = 4 * in.i, c0 = 4 * in.j;
        const float* xn = xp + in.n * Hp * Wp * Cin;
        if (vec_cin && r0 + 5 < Hp && c0 + 5 < Wp)
          winograd_input<true>(xn, Hp, Wp, Cin, Cp, r0, c0, t, V);
        else
          winograd_input<false>(xn, Hp, Wp, Cin, Cp, r0, c0, t, V);
      }
      channel_blocks(Cout, [&](auto nv, int64_t co0) {
        winograd_products<decltype(nv)::value>(V, U, Cin, Cp, Cout, co0, nb, M);
      });
      TileCursor out_tile(t0, Ti, Tj);
      for (int t = 0; t < nt; ++t, out_tile.next()) {
        const int64_t n = out_tile.n;
        winograd_output(M, Cout, t, bp, out_tile.i, out_tile.j, H, W, Ho, Wo, relu,
                        op + n * Ho * Wo * Cout, ap ? ap + n * Ho * Wo * Cout : nullptr);
      }
    }
  });
#else
  (void)relu; (void)b; (void)N;
#endif
  return {out, arg};
}

// Flush-to-zero and denormals-are-zero (MXCSR bits 15 and 6) on the calling thread and on
// every thread of ATen's pool (one chunk each), where `on`; cleared where not. Returns
// whether they were set on the calling thread before. Adam's first moment of a weight
// that gets no gradient (a dead ReLU unit) decays by 0.9 a step into denormals within a
// few hundred steps, and arithmetic on denormals is ~10x slower: the lecture's Adam step
// took 1.0-1.5 ms instead of 0.15 from its second epoch on. TensorFlow flushes them too.
bool set_flush_denormal(bool on) {
#if defined(__SSE__)
  constexpr unsigned bits = 0x8040;
  const bool before = (_mm_getcsr() & bits) == bits;
  auto apply = [on]() { _mm_setcsr(on ? (_mm_getcsr() | bits) : (_mm_getcsr() & ~bits)); };
  apply();
  const int64_t n = at::get_num_threads();
  at::parallel_for(0, n, 1, [&](int64_t, int64_t) { apply(); });
  return before;
#else
  (void)on;
  return false;
#endif
}

// Dropout's mask from a 64-bit seed and each element's position, never stored: element i
// is kept when the top 24 bits of hash(seed, i) fall below `threshold` (the keep
// probability times 2^24), and out = x * (kept ? scale : 0), as torch's dropout
// multiplies (NaN and -0 as there). The backward pass is the same call on the gradient
// with the same seed. torch's CPU bernoulli_ draws each element from a serial Mersenne
// Twister (~10 ns an element: 2.5 ms a step for the lecture's model with Dropout); this is
// a few vector instructions an element and needs no mask in memory. The hash is two
// rounds of a 32-bit integer mixer (Chris Wellons's "lowbias32"), keyed by the seed's two
// halves, so that two seeds give unrelated masks, not shifted copies.
static inline uint32_t mix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x7feb352dU;
  h ^= h >> 15;
  h *= 0x846ca68bU;
  h ^= h >> 16;
  return h;
}

// One run of positions lo, lo+1, ... sharing the second key. A function of its own, values
// in arguments: inside parallel_for's lambda, with the keys captured by reference, GCC
// left this loop scalar (~3.5 ns an element instead of ~0.1).
static void dropout_run(const float* xs, float* ys, int64_t len, uint32_t lo, uint32_t s0,
                        uint32_t key, uint32_t thr, float sc) {
#pragma omp simd
  for (int64_t k = 0; k < len; ++k) {
    const uint32_t h = mix32(mix32((lo + uint32_t(k)) ^ s0) ^ key);
    ys[k] = xs[k] * ((h >> 8) < thr ? sc : 0.f);
  }
}

at::Tensor dropout_apply(const at::Tensor& x, int64_t seed, int64_t threshold, double scale) {
  TORCH_CHECK(x.scalar_type() == at::kFloat, "dropout_apply: float32 only");
  TORCH_CHECK(x.is_non_overlapping_and_dense(), "dropout_apply: a dense tensor only");
  TORCH_CHECK(threshold >= 0 && threshold <= (int64_t(1) << 24), "dropout_apply: threshold");
  at::Tensor out = at::empty_like(x);  // same strides: element i of memory is element i
  const float* src = x.const_data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const uint32_t s0 = uint32_t(uint64_t(seed)), s1 = uint32_t(uint64_t(seed) >> 32);
  const uint32_t thr = uint32_t(threshold);
  const float sc = float(scale);
  at::parallel_for(0, x.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    // positions beyond 2^32 change the second key, so the runs are of 32-bit positions
    for (int64_t i = begin; i < end;) {
      const int64_t stop = std::min(end, ((i >> 32) + 1) << 32);
      const uint32_t key = s1 ^ (uint32_t(uint64_t(i) >> 32) * 0x9e3779b9U);
      dropout_run(src + i, dst + i, stop - i, uint32_t(uint64_t(i)), s0, key, thr, sc);
      i = stop;
    }
  });
  return out;
}

// ELU and SELU, scale * (x > 0 ? x : alpha * (e^x - 1)), forward and backward, for
// improve.yaml's elu and selu variants: torch's CPU exp/expm1 take ~0.6 ns an element
// here (0.59 ms for the lecture's first pooled map), this ~0.05. The exponential is
// Cephes expf's: x = n ln2 + r, |r| <= ln2/2, e^r = 1 + r + r^2 P(r), 2^n from the
// exponent bits; within 1e-7 relative of expm1 in double (torch's: within ~1 ulp too).
// Both sides are computed and then chosen: a branch keeps the loop scalar.
namespace {

struct Exp2n {
  float q, two_n;  // e^x = two_n * (1 + q)
};

inline Exp2n exp_parts(float x) {  // x <= 0
  x = std::max(x, -88.0f);
  const float n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;  // round to nearest
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  return {p * r * r + r, __builtin_bit_cast(float, (int32_t(n) + 127) << 23)};
}

// AVX-512 vectorizes these; GCC 12-13 leave the AVX2 build's loops scalar (correct, slower)
void elu_run(const float* x, float* y, int64_t n, float alpha, float scale) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const Exp2n e = exp_parts(std::min(v, 0.f));
    // 2^n q + (2^n - 1): e^v - 1 without cancellation (exact in the n = 0 range)
    const float em1 = e.two_n * e.q + (e.two_n - 1.0f);
    y[i] = v > 0.f ? scale * v : (scale * alpha) * em1;
  }
}

void elu_grad_run(const float* g, const float* x, float* gx, int64_t n, float alpha,
                  float scale) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const Exp2n e = exp_parts(std::min(v, 0.f));
    const float ev = e.two_n * e.q + e.two_n;
    gx[i] = v > 0.f ? g[i] * scale : g[i] * ((scale * alpha) * ev);
  }
}

void check_elementwise(const at::Tensor& t, const char* what) {
  TORCH_CHECK(t.scalar_type() == at::kFloat, what, ": float32 only");
  TORCH_CHECK(t.is_non_overlapping_and_dense(), what, ": a dense tensor only");
}

}  // namespace

at::Tensor elu_forward(const at::Tensor& x, double alpha, double scale) {
  check_elementwise(x, "elu_forward");
  at::Tensor y = at::empty_like(x);
  const float* xp = x.const_data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const float a = float(alpha), s = float(scale);
  at::parallel_for(0, x.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    elu_run(xp + begin, yp + begin, end - begin, a, s);
  });
  return y;
}

at::Tensor elu_backward(const at::Tensor& g, const at::Tensor& x, double alpha, double scale) {
  check_elementwise(x, "elu_backward");
  check_elementwise(g, "elu_backward");
  TORCH_CHECK(g.sizes() == x.sizes() && g.strides() == x.strides(),
              "elu_backward: the gradient must have the input's shape and strides");
  at::Tensor gx = at::empty_like(x);
  const float* gp = g.const_data_ptr<float>();
  const float* xp = x.const_data_ptr<float>();
  float* op = gx.data_ptr<float>();
  const float a = float(alpha), s = float(scale);
  at::parallel_for(0, x.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    elu_grad_run(gp + begin, xp + begin, op + begin, end - begin, a, s);
  });
  return gx;
}

// setup.py builds this file once per instruction set (cnnlab/fast/isa.py) and names it here
#ifndef CNNLAB_KERNELS_ISA
#define CNNLAB_KERNELS_ISA "unknown"
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.attr("ISA") = CNNLAB_KERNELS_ISA;
  m.def("conv_pool_forward", &conv_pool_forward, "fused conv + 2x2 max pool (+ ReLU), forward");
  m.def("conv_pool_backward", &conv_pool_backward, "fused conv + 2x2 max pool, weight grads");
  m.def("pool_forward", &pool_forward, "2x2 max pool (+ ReLU), forward");
  m.def("pool_backward", &pool_backward, "2x2 max pool (+ ReLU), input gradient");
  m.def("norm_pool_forward", &norm_pool_forward,
        "activation + BatchNormalization (batch statistics) + 2x2 max pooling, NHWC");
  m.def("norm_pool_backward", &norm_pool_backward, "the gradients of norm_pool_forward");
  m.def("sparse_backward_fast", &sparse_backward_fast,
        "whether conv_then_pool_backward has a fast path for (Cin, KH, KW, Ho, Wo)");
  m.def("conv_then_pool_backward", &conv_then_pool_backward,
        "gradients of conv + 2x2 max pool from the pooled gradient (sparse)");
  m.def("winograd_fits", &winograd_fits,
        "whether winograd_pool_forward has a path for (Cin, KH, KW, Cout)");
  m.def("set_flush_denormal", &set_flush_denormal,
        "flush denormals to zero on this thread and ATen's pool; returns the previous state");
  m.def("dropout_apply", &dropout_apply,
        "x * (hash(seed, i) keeps element i ? scale : 0): dropout's forward and backward");
  m.def("elu_forward", &elu_forward, "scale * elu(x, alpha): ELU and SELU");
  m.def("elu_backward", &elu_backward, "the input gradient of elu_forward");
  m.def("winograd_pool_forward", &winograd_pool_forward,
        "3x3 conv by Winograd F(4x4,3x3) + 2x2 max pool (+ ReLU), forward");
}
