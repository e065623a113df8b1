#version 460
// dst = src converted to dst's dtype, any strides on both (a fill reads a 0-stride source).
#include "elementwise.glsl"

CT(DST) convert(CT(SRC) v) {
#if DST_KIND == SRC_KIND
  return v;
#elif DST_KIND == 4
  return v != CT(SRC)(0) ? 1 : 0;
#elif (DST_KIND == 2 || DST_KIND == 3) && SRC_KIND <= 1
  // Float to integer saturates and NaN gives 0, where a plain cast would be undefined.
#if DST_KIND == 2
  const float lowest = -2147483648.0;
#else
  const float lowest = -9223372036854775808.0;
#endif
  if (isnan(v)) return CT(DST)(0);
  if (v <= lowest) return DST_KIND == 2 ? CT(DST)(0x80000000u) : CT(DST)(0x8000000000000000ul);
  if (v >= -lowest) return DST_KIND == 2 ? CT(DST)(0x7fffffff) : CT(DST)(0x7ffffffffffffffful);
  return CT(DST)(v);
#else
  return CT(DST)(v);
#endif
}

void main() {
  ElementwiseParams p = ElementwiseParams(params_address);
  FOR_EACH_ELEMENT(p, i) {
    STORE(DST)(p.addr[0], operand_offset(p, 0, i),
               convert(LOAD(SRC)(p.addr[1], operand_offset(p, 1, i))));
  }
}
