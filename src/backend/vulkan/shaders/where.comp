#version 460
// out = cond ? a : b, cond bool.
#include "elementwise.glsl"

void main() {
  ElementwiseParams p = ElementwiseParams(params_address);
  FOR_EACH_ELEMENT(p, i) {
    bool c = load_bool(p.addr[1], operand_offset(p, 1, i)) != 0;
    CT(T) v = c ? LOAD(T)(p.addr[2], operand_offset(p, 2, i)) : LOAD(T)(p.addr[3], operand_offset(p, 3, i));
    STORE(T)(p.addr[0], operand_offset(p, 0, i), v);
  }
}
