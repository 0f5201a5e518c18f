// Fused Conv2D (stride 1) + 2x2/stride-2 max pooling for a layer whose input needs no
// gradient (the first layer, which sees the data). The full-resolution convolution
// output is never written: each pooled pixel computes its four convolution outputs,
// keeps the largest per channel and remembers which (one byte). The weight gradient is
// computed straight from the input and those choices.
//
// Layouts (Keras's, channels last):
//   x   (N, Hp, Wp, Cin)  float32, already padded for 'same' convolution
//   w   (KH, KW, Cin, Cout) float32
//   out (N, Ho, Wo, Cout) the pooled pre-activation; arg (N, Ho, Wo, Cout) uint8 in 0..3
// A window offset whose conv position falls outside the conv output is skipped, which
// is what max pooling with ceil_mode (TF 'same' padded only at the end) does.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace {

void check_inputs(const at::Tensor& x, const at::Tensor& w) {
  TORCH_CHECK(x.dim() == 4 && w.dim() == 4, "expected x (N,H,W,C) and w (KH,KW,Cin,Cout)");
  TORCH_CHECK(x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat, "float32 only");
  TORCH_CHECK(x.is_contiguous() && w.is_contiguous(), "contiguous tensors only");
  TORCH_CHECK(x.size(3) == w.size(2), "channel mismatch");
}

// The four convolution outputs under one pooled pixel, for Cout known at compile time so
// the accumulators stay in registers. acc is (4, C); offsets outside the conv output are
// skipped by the caller through `valid`.
template <int C>
inline void accumulate4(const float* __restrict__ xp, const float* __restrict__ wp,
                        const float* __restrict__ bp, float* __restrict__ acc, int valid,
                        int64_t row0, int64_t col0, int64_t Hp_stride_row, int64_t Cin,
                        int64_t KH, int64_t KW) {
  float r[4][C];
  for (int off = 0; off < 4; ++off)
#pragma omp simd
    for (int co = 0; co < C; ++co) r[off][co] = bp ? bp[co] : 0.f;
  for (int64_t ky = 0; ky < KH; ++ky) {
    for (int64_t kx = 0; kx < KW; ++kx) {
      const float* __restrict__ wv = wp + (ky * KW + kx) * Cin * C;
      const float* __restrict__ x00 = xp + (row0 + ky) * Hp_stride_row + (col0 + kx) * Cin;
      for (int64_t ci = 0; ci < Cin; ++ci) {
        const float* __restrict__ wr = wv + ci * C;
        const float v0 = x00[ci], v1 = x00[Cin + ci];
        const float v2 = x00[Hp_stride_row + ci], v3 = x00[Hp_stride_row + Cin + ci];
#pragma omp simd
        for (int co = 0; co < C; ++co) {
          const float w = wr[co];
          r[0][co] += v0 * w;
          r[1][co] += v1 * w;
          r[2][co] += v2 * w;
          r[3][co] += v3 * w;
        }
      }
    }
  }
  for (int off = 0; off < 4; ++off)
#pragma omp simd
    for (int co = 0; co < C; ++co) acc[off * C + co] = r[off][co];
  (void)valid;
}

// Weight-gradient contribution of one pooled pixel: gw[k][co] += sum over the four
// offsets of x_off[k] * gm[off][co], with gm the pooled gradient routed to the winner.
template <int C>
inline void backward4(const float* __restrict__ x00, const float* __restrict__ gm,
                      float* __restrict__ gw, int64_t row_stride, int64_t Cin, int64_t KH,
                      int64_t KW) {
  float m[4][C];
  for (int off = 0; off < 4; ++off)
#pragma omp simd
    for (int co = 0; co < C; ++co) m[off][co] = gm[off * C + co];
  for (int64_t ky = 0; ky < KH; ++ky) {
    for (int64_t kx = 0; kx < KW; ++kx) {
      const float* __restrict__ xv = x00 + ky * row_stride + kx * Cin;
      float* __restrict__ gwv = gw + (ky * KW + kx) * Cin * C;
      for (int64_t ci = 0; ci < Cin; ++ci) {
        const float v0 = xv[ci], v1 = xv[Cin + ci];
        const float v2 = xv[row_stride + ci], v3 = xv[row_stride + Cin + ci];
        float* __restrict__ gr = gwv + ci * C;
#pragma omp simd
        for (int co = 0; co < C; ++co)
          gr[co] += v0 * m[0][co] + v1 * m[1][co] + v2 * m[2][co] + v3 * m[3][co];
      }
    }
  }
}

}  // namespace

std::vector<at::Tensor> conv_pool_forward(const at::Tensor& x, const at::Tensor& w,
                                          const at::Tensor& b, int64_t Ho, int64_t Wo) {
  check_inputs(x, w);
  const int64_t N = x.size(0), Hp = x.size(1), Wp = x.size(2), Cin = x.size(3);
  const int64_t KH = w.size(0), KW = w.size(1), Cout = w.size(3);
  const int64_t Hc = Hp - KH + 1, Wc = Wp - KW + 1;  // conv output size
  auto out = at::empty({N, Ho, Wo, Cout}, x.options());
  auto arg = at::empty({N, Ho, Wo, Cout}, x.options().dtype(at::kByte));
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  const float* bp = b.defined() && b.numel() ? b.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  uint8_t* ap = arg.data_ptr<uint8_t>();
  at::parallel_for(0, N * Ho, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> acc_buf(4 * Cout);
    float* __restrict__ acc = acc_buf.data();
    for (int64_t nr = begin; nr < end; ++nr) {
      const int64_t n = nr / Ho, i = nr % Ho;
      for (int64_t j = 0; j < Wo; ++j) {
        float* __restrict__ o = op + ((n * Ho + i) * Wo + j) * Cout;
        uint8_t* __restrict__ a = ap + ((n * Ho + i) * Wo + j) * Cout;
        int valid = 0;
        for (int off = 0; off < 4; ++off) {
          const int64_t r = 2 * i + (off >> 1), c = 2 * j + (off & 1);
          if (r < Hc && c < Wc) valid |= 1 << off;
        }
        // the fast path reads a (KH+1, KW+1) window: it needs all four offsets inside
        const bool full = valid == 15;
        if (full && Cout == 32) {
          accumulate4<32>(xp + n * Hp * Wp * Cin, wp, bp, acc, valid, 2 * i, 2 * j, Wp * Cin, Cin, KH, KW);
        } else if (full && Cout == 16) {
          accumulate4<16>(xp + n * Hp * Wp * Cin, wp, bp, acc, valid, 2 * i, 2 * j, Wp * Cin, Cin, KH, KW);
        } else if (full && Cout == 64) {
          accumulate4<64>(xp + n * Hp * Wp * Cin, wp, bp, acc, valid, 2 * i, 2 * j, Wp * Cin, Cin, KH, KW);
        } else {
          for (int off = 0; off < 4; ++off) {
            if (!(valid >> off & 1)) continue;
            const int64_t r = 2 * i + (off >> 1), c = 2 * j + (off & 1);
            float* __restrict__ ac = acc + off * Cout;
#pragma omp simd
            for (int64_t co = 0; co < Cout; ++co) ac[co] = bp ? bp[co] : 0.f;
            for (int64_t ky = 0; ky < KH; ++ky) {
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
        }
        // first maximum in scan order wins, as in max_pool2d; NaN propagates
#pragma omp simd
        for (int64_t co = 0; co < Cout; ++co) { o[co] = acc[co]; a[co] = 0; }
        for (int off = 1; off < 4; ++off) {
          if (!(valid >> off & 1)) continue;
          const float* __restrict__ ac = acc + off * Cout;
#pragma omp simd
          for (int64_t co = 0; co < Cout; ++co) {
            const float v = ac[co];
            const bool take = (v > o[co]) | (v != v);
            o[co] = take ? v : o[co];
            a[co] = take ? static_cast<uint8_t>(off) : a[co];
          }
        }
      }
    }
  });
  return {out, arg};
}

std::vector<at::Tensor> conv_pool_backward(const at::Tensor& x, const at::Tensor& arg,
                                           const at::Tensor& grad, int64_t KH, int64_t KW) {
  TORCH_CHECK(grad.is_contiguous() && arg.is_contiguous() && x.is_contiguous(), "contiguous only");
  const int64_t N = x.size(0), Hp = x.size(1), Wp = x.size(2), Cin = x.size(3);
  const int64_t Ho = grad.size(1), Wo = grad.size(2), Cout = grad.size(3);
  const int64_t Hc = Hp - KH + 1, Wc = Wp - KW + 1;
  const int64_t wsize = KH * KW * Cin * Cout;
  const int threads = at::get_num_threads();
  // one accumulator per thread, summed at the end
  std::vector<std::vector<double>> gw_t(threads, std::vector<double>());
  std::vector<std::vector<double>> gb_t(threads, std::vector<double>());
  const float* xp = x.data_ptr<float>();
  const float* gp = grad.data_ptr<float>();
  const uint8_t* ap = arg.data_ptr<uint8_t>();
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    const int t = at::get_thread_num();
    std::vector<float> gw(wsize, 0.f), gb(Cout, 0.f), gm(4 * Cout);
    for (int64_t n = begin; n < end; ++n) {
      for (int64_t i = 0; i < Ho; ++i) {
        for (int64_t j = 0; j < Wo; ++j) {
          const float* g = gp + ((n * Ho + i) * Wo + j) * Cout;
          const uint8_t* a = ap + ((n * Ho + i) * Wo + j) * Cout;
          bool used[4] = {false, false, false, false};
          float* __restrict__ gmp = gm.data();
          for (int off = 0; off < 4; ++off) {
            float* __restrict__ m = gmp + off * Cout;
            int hits = 0;
#pragma omp simd reduction(+:hits)
            for (int64_t co = 0; co < Cout; ++co) {
              const bool hit = a[co] == off;
              m[co] = hit ? g[co] : 0.f;
              hits += hit;
            }
            used[off] = hits > 0;
          }
          float* __restrict__ gbv = gb.data();
#pragma omp simd
          for (int64_t co = 0; co < Cout; ++co) gbv[co] += g[co];
          const bool full = 2 * i + 1 < Hc && 2 * j + 1 < Wc;
          const float* __restrict__ x00 = xp + ((n * Hp + 2 * i) * Wp + 2 * j) * Cin;
          if (full && Cout == 32) {
            backward4<32>(x00, gmp, gw.data(), Wp * Cin, Cin, KH, KW);
            continue;
          } else if (full && Cout == 16) {
            backward4<16>(x00, gmp, gw.data(), Wp * Cin, Cin, KH, KW);
            continue;
          } else if (full && Cout == 64) {
            backward4<64>(x00, gmp, gw.data(), Wp * Cin, Cin, KH, KW);
            continue;
          }
          for (int off = 0; off < 4; ++off) {
            if (!used[off]) continue;
            const int64_t r = 2 * i + (off >> 1), c = 2 * j + (off & 1);
            if (r >= Hc || c >= Wc) continue;
            const float* __restrict__ m = gmp + off * Cout;
            for (int64_t ky = 0; ky < KH; ++ky) {
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
    }
    auto& tw = gw_t[t];
    auto& tb = gb_t[t];
    if (tw.empty()) { tw.assign(wsize, 0.0); tb.assign(Cout, 0.0); }
    for (int64_t k = 0; k < wsize; ++k) tw[k] += gw[k];
    for (int64_t co = 0; co < Cout; ++co) tb[co] += gb[co];
  });
  auto gw = at::zeros({KH, KW, Cin, Cout}, x.options());
  auto gb = at::zeros({Cout}, x.options());
  float* gwp = gw.data_ptr<float>();
  float* gbp = gb.data_ptr<float>();
  for (int t = 0; t < threads; ++t) {
    if (gw_t[t].empty()) continue;
    for (int64_t k = 0; k < wsize; ++k) gwp[k] += static_cast<float>(gw_t[t][k]);
    for (int64_t co = 0; co < Cout; ++co) gbp[co] += static_cast<float>(gb_t[t][co]);
  }
  return {gw, gb};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("conv_pool_forward", &conv_pool_forward, "fused conv + 2x2 max pool (forward)");
  m.def("conv_pool_backward", &conv_pool_backward, "fused conv + 2x2 max pool (weight grads)");
}
