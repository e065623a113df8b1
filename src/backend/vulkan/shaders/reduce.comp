#version 460
// Sum, mean, max and min over a set of dims. One workgroup per (output, chunk): its invocations
// stride over the chunk's reduced elements, then combine in shared memory. With one chunk this is
// the one-pass reduction; with several (few outputs, many elements) the partials are written in
// the accumulation dtype and a second dispatch of this shader, over the partials, finishes.
// Accumulation: f32 for f16/bf16/f32, f64 for f64, int64 for integers and bool.
#include "common.glsl"

#define SUM 0
#define MEAN 1
#define MAX 2
#define MIN 3
#define MAX_DIMS 6

layout(local_size_x = WG) in;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer ReduceParams {
  uint64_t in_addr;
  uint64_t out_addr;
  uint n_out;
  uint count;       // reduced elements per output
  uint chunks;      // partials per output; the output then holds [n_out, chunks] accumulators
  uint op;
  uint divisor;     // what a mean divides by (the count of the first pass)
  uint kept_ndim;
  uint reduced_ndim;
  uint pad;
  uint kept_shape[MAX_DIMS];
  uint kept_strides[MAX_DIMS];
  uint reduced_shape[MAX_DIMS];
  uint reduced_strides[MAX_DIMS];
};

#if T_KIND == 0
#define A float
#define A_INIT_MAX (-1.0 / 0.0)
#define A_INIT_MIN (1.0 / 0.0)
#elif T_KIND == 1
#define A double
#define A_INIT_MAX (-1.0LF / 0.0LF)
#define A_INIT_MIN (1.0LF / 0.0LF)
#else
#define A int64_t
#define A_INIT_MAX int64_t(0x8000000000000000ul)
#define A_INIT_MIN int64_t(0x7ffffffffffffffful)
#endif

shared A partial[WG];

#if T_KIND >= 2
bool isnan(int64_t x) { return false; }
#endif

A combine(uint op, A x, A y) {
  if (op == MAX) return (x > y || isnan(x)) ? x : y;
  if (op == MIN) return (x < y || isnan(x)) ? x : y;
  return x + y;
}
void store_out(uint64_t address, uint index, A value) {
#if OUT_KIND == 4
  store_bool(address, index, value != A(0) ? 1 : 0);
#else
  STORE(OUT)(address, index, CT(OUT)(value));
#endif
}

uint offset_of(uint index, uint ndim, uint shape[MAX_DIMS], uint strides[MAX_DIMS]) {
  uint offset = 0;
  for (int d = int(ndim) - 1; d >= 0; --d) {
    offset += (index % shape[d]) * strides[d];
    index /= shape[d];
  }
  return offset;
}

void main() {
  ReduceParams p = ReduceParams(params_address);
  uint t = gl_LocalInvocationIndex, op = p.op;
  uint chunk = gl_WorkGroupID.y, chunks = p.chunks;
  uint begin = uint(uint64_t(p.count) * chunk / chunks);
  uint end = uint(uint64_t(p.count) * (chunk + 1) / chunks);
  A init = op == MAX ? A_INIT_MAX : op == MIN ? A_INIT_MIN : A(0);
  uint kept_shape[MAX_DIMS] = p.kept_shape, kept_strides[MAX_DIMS] = p.kept_strides;
  uint red_shape[MAX_DIMS] = p.reduced_shape, red_strides[MAX_DIMS] = p.reduced_strides;
  uint red_ndim = p.reduced_ndim;
  for (uint o = gl_WorkGroupID.x; o < p.n_out; o += gl_NumWorkGroups.x) {
    uint base = offset_of(o, p.kept_ndim, kept_shape, kept_strides);
    A acc = init;
    if (red_ndim == 1) {
      uint stride = red_strides[0];
      for (uint r = begin + t; r < end; r += WG) acc = combine(op, acc, A(LOAD(T)(p.in_addr, base + r * stride)));
    } else {
      for (uint r = begin + t; r < end; r += WG)
        acc = combine(op, acc, A(LOAD(T)(p.in_addr, base + offset_of(r, red_ndim, red_shape, red_strides))));
    }
    barrier();
    partial[t] = acc;
    barrier();
    for (uint s = WG / 2; s > 0; s >>= 1) {
      if (t < s) partial[t] = combine(op, partial[t], partial[t + s]);
      barrier();
    }
    if (t == 0) {
      A result = partial[0];
      if (chunks > 1) {
        store_out(p.out_addr, o * chunks + chunk, result);
      } else {
        if (op == MEAN) {
#if T_KIND <= 1
          result = result / A(p.divisor);
#else
          result = p.divisor == 0 ? A(0) : result / A(p.divisor);
#endif
        }
        store_out(p.out_addr, o, result);
      }
    }
  }
}
