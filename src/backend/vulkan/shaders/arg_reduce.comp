#version 460
// values and indices of the max or min along one dim: a workgroup per output; each invocation
// keeps the first extreme of the elements it visits, and the shared-memory combine prefers the
// lower index on ties, so the first extreme wins. NaN counts as the extreme.
#include "common.glsl"

#define MAX_DIMS 6
layout(local_size_x = WG) in;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer ArgReduceParams {
  uint64_t in_addr;
  uint64_t values_addr;
  uint64_t indices_addr;
  uint n_out;
  uint n;        // elements along the dim
  uint stride;   // of the dim
  uint is_max;
  uint kept_ndim;
  uint pad;
  uint kept_shape[MAX_DIMS];
  uint kept_strides[MAX_DIMS];
};

#if T_KIND == 0
#define A float
#elif T_KIND == 1
#define A double
#else
#define A int64_t
bool isnan(int64_t x) { return false; }
#endif

shared A best_value[WG];
shared uint best_index[WG];

bool beats(bool is_max, A v, A best) {
  return !isnan(best) && ((is_max ? v > best : v < best) || isnan(v));
}

void main() {
  ArgReduceParams p = ArgReduceParams(params_address);
  uint t = gl_LocalInvocationIndex;
  bool is_max = p.is_max != 0u;
  for (uint o = gl_WorkGroupID.x; o < p.n_out; o += gl_NumWorkGroups.x) {
    uint base = 0, rest = o;
    for (int d = int(p.kept_ndim) - 1; d >= 0; --d) {
      base += (rest % p.kept_shape[d]) * p.kept_strides[d];
      rest /= p.kept_shape[d];
    }
    uint at = 0xffffffffu;
    A best = A(0);
    for (uint k = t; k < p.n; k += WG) {
      A v = A(LOAD(T)(p.in_addr, base + k * p.stride));
      if (at == 0xffffffffu || beats(is_max, v, best)) {
        best = v;
        at = k;
      }
    }
    barrier();
    best_value[t] = best;
    best_index[t] = at;
    barrier();
    for (uint s = WG / 2; s > 0; s >>= 1) {
      if (t < s) {
        uint j = best_index[t + s];
        if (j != 0xffffffffu) {
          uint i = best_index[t];
          A v = best_value[t + s], b = best_value[t];
          bool take = i == 0xffffffffu || beats(is_max, v, b) ||
                      (j < i && !beats(is_max, b, v));
          if (take) {
            best_value[t] = v;
            best_index[t] = j;
          }
        }
      }
      barrier();
    }
    if (t == 0) {
      uint k = best_index[0];
      STORE(T)(p.values_addr, o, LOAD(T)(p.in_addr, base + k * p.stride));
      store_i64(p.indices_addr, o, int64_t(k));
    }
  }
}
