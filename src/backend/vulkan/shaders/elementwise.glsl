// The parameter block of the elementwise family (copy, unary, binary, where): up to four operands
// (operand 0 is the output) over one shape of at most MAX_DIMS dims, each with its own element
// strides; the host has merged dims wherever every operand allows. Mirrors ElementwiseParams in
// elementwise.h.
#include "common.glsl"

#define MAX_DIMS 6
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer ElementwiseParams {
  uint64_t addr[4];
  uint numel;
  uint ndim;
  uint op;
  uint contiguous;  // every operand dense: the offsets are the index itself
  float alpha_f;
  float beta_f;
  uint64_t alpha_bits;  // alpha and beta as doubles, for f64 variants
  uint64_t beta_bits;
  int64_t alpha_i;  // alpha and beta saturated into the integer dtype, for integer variants
  int64_t beta_i;
  uint shape[MAX_DIMS];
  uint strides[4 * MAX_DIMS];  // operand k, dim d at k * MAX_DIMS + d
};

layout(local_size_x = WG) in;

// The element offset of operand k for the flat index i of the shape.
uint operand_offset(ElementwiseParams p, uint k, uint i) {
  if (p.contiguous != 0u) return i;
  uint offset = 0;
  for (int d = int(p.ndim) - 1; d >= 0; --d) {
    uint size = p.shape[d];
    offset += (i % size) * p.strides[k * MAX_DIMS + d];
    i /= size;
  }
  return offset;
}

#define FOR_EACH_ELEMENT(p, i) \
  for (uint i = gl_GlobalInvocationID.x; i < p.numel; i += gl_NumWorkGroups.x * WG)

// VEC4 variants (f32, every operand dense and 16-byte aligned, no bool output): FOR_EACH_VEC4
// walks 16-byte vectors, and FOR_EACH_TAIL the last numel % 4 elements one by one.
layout(buffer_reference, std430, buffer_reference_align = 16) buffer Vec4Buf { vec4 v[]; };
#define FOR_EACH_VEC4(p, i) \
  for (uint i = gl_GlobalInvocationID.x; i < p.numel / 4; i += gl_NumWorkGroups.x * WG)
#define FOR_EACH_TAIL(p, i) \
  for (uint i = (p.numel & ~3u) + gl_GlobalInvocationID.x; i < p.numel; i = p.numel)
