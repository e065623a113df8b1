#version 460
// Same-dtype copy of 4-byte elements into a contiguous [batch, rows, cols] from a source that is
// unit-stride along rows (a transposed view): 32 x 32 tiles pass through shared memory, so that
// both the reads and the writes of a warp are consecutive addresses.
#include "common.glsl"

layout(local_size_x = 32, local_size_y = 8) in;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer TransposeParams {
  uint64_t dst;
  uint64_t src;
  uint batch;
  uint rows;
  uint cols;
  uint src_col;    // source stride along cols (along rows it is 1)
  uint src_batch;  // source stride along batch
  uint pad;
};

// One column of padding: a tile's column read touches 32 different banks.
shared uint tile[32][33];

void main() {
  TransposeParams p = TransposeParams(params_address);
  U32Buf dst = U32Buf(p.dst), src = U32Buf(p.src);
  uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
  uint row0 = gl_WorkGroupID.y * 32, col0 = gl_WorkGroupID.x * 32;
  for (uint b = gl_WorkGroupID.z; b < p.batch; b += gl_NumWorkGroups.z) {
    // Read along the source's unit stride (rows), tile[c][r].
    [[unroll]] for (uint k = 0; k < 32; k += 8) {
      uint r = row0 + tx, c = col0 + ty + k;
      if (r < p.rows && c < p.cols) tile[ty + k][tx] = src.v[b * p.src_batch + c * p.src_col + r];
    }
    barrier();
    [[unroll]] for (uint k = 0; k < 32; k += 8) {
      uint r = row0 + ty + k, c = col0 + tx;
      if (r < p.rows && c < p.cols) dst.v[(b * p.rows + r) * p.cols + c] = tile[tx][ty + k];
    }
    barrier();
  }
}
