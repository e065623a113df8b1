#version 460
// out = op(a, b) for the BinaryOp enum of backend.h; comparisons write bool. Integers wrap on
// overflow and divide as Python's //, with x // 0 = 0.
#include "elementwise.glsl"
#include "math.glsl"

#define ADD 0
#define SUB 1
#define MUL 2
#define DIV 3
#define POW 4
#define MAXIMUM 5
#define MINIMUM 6
#define EQ 7
#define NE 8
#define LT 9
#define LE 10
#define GT 11
#define GE 12
#define TANH_BACKWARD 13
#define SIGMOID_BACKWARD 14
#define RELU_BACKWARD 15
#define GELU_ERF_BACKWARD 16
#define GELU_TANH_BACKWARD 17

#if T_KIND == 0
#define C float
#define EXP_C exp
#define TANH_C tanh
#define ERF_C erf_f32
#define POW_C pow_f32
#elif T_KIND == 1
#define C double
#define EXP_C exp_f64
#define TANH_C tanh_f64
#define ERF_C erf_f64
#define POW_C pow_f64
#else
#define C CT(T)
#endif

#if T_KIND <= 1
C apply(uint op, C x, C y) {
  const C inv_sqrt2 = C(K_INV_SQRT2), inv_sqrt_2pi = C(K_INV_SQRT_2PI);
  const C sqrt_2_over_pi = C(K_SQRT_2_OVER_PI), cubic = C(K_GELU_CUBIC);
  switch (op) {
    case ADD: return x + y;
    case SUB: return x - y;
    case MUL: return x * y;
    case DIV: return x / y;
    case POW: return POW_C(x, y);
    case MAXIMUM: return (x > y || isnan(x)) ? x : y;  // NaN in either wins, as torch.maximum
    case MINIMUM: return (x < y || isnan(x)) ? x : y;
    case TANH_BACKWARD: return x * (C(1) - y * y);
    case SIGMOID_BACKWARD: return x * y * (C(1) - y);
    case RELU_BACKWARD: return y > C(0) ? x : C(0);
    case GELU_ERF_BACKWARD: {
      C cdf = C(0.5) * (C(1) + ERF_C(y * inv_sqrt2));
      C pdf = inv_sqrt_2pi * EXP_C(C(-0.5) * y * y);
      return x * (cdf + y * pdf);
    }
    default: {
      C t = TANH_C(sqrt_2_over_pi * (y + cubic * y * y * y));
      C du = sqrt_2_over_pi * (C(1) + C(3) * cubic * y * y);
      return x * (C(0.5) * (C(1) + t) + C(0.5) * y * (C(1) - t * t) * du);
    }
  }
}
#else
C int_pow(C base, int64_t e) {
  if (e < 0) return base == C(1) ? C(1) : base == C(-1) ? ((e & 1) != 0 ? C(-1) : C(1)) : C(0);
  C result = C(1);
  for (; e != 0; e >>= 1) {
    if ((e & 1) != 0) result *= base;
    base *= base;
  }
  return result;
}
C floor_div(C x, C y) {
  if (y == C(0)) return C(0);
  if (y == C(-1)) return -x;
  C q = x / y;
  return (x % y != C(0) && ((x < C(0)) != (y < C(0)))) ? q - C(1) : q;
}
C apply(uint op, C x, C y) {
  switch (op) {
    case ADD: return x + y;
    case SUB: return x - y;
    case MUL: return x * y;
    case DIV: return floor_div(x, y);
    case POW: return int_pow(x, int64_t(y));
    case MAXIMUM: return max(x, y);
    default: return min(x, y);
  }
}
#endif

int compare(uint op, C x, C y) {
  switch (op) {
    case EQ: return x == y ? 1 : 0;
    case NE: return x != y ? 1 : 0;
    case LT: return x < y ? 1 : 0;
    case LE: return x <= y ? 1 : 0;
    case GT: return x > y ? 1 : 0;
    default: return x >= y ? 1 : 0;
  }
}

#ifdef VEC4
void main() {
  ElementwiseParams p = ElementwiseParams(params_address);
  uint op = p.op;
  FOR_EACH_VEC4(p, i) {
    vec4 x = Vec4Buf(p.addr[1]).v[i], y = Vec4Buf(p.addr[2]).v[i];
    Vec4Buf(p.addr[0]).v[i] =
        vec4(apply(op, x.x, y.x), apply(op, x.y, y.y), apply(op, x.z, y.z), apply(op, x.w, y.w));
  }
  FOR_EACH_TAIL(p, i) {
    store_f32(p.addr[0], i, apply(op, load_f32(p.addr[1], i), load_f32(p.addr[2], i)));
  }
}
#else
void main() {
  ElementwiseParams p = ElementwiseParams(params_address);
  uint op = p.op;
  bool comparison = op >= EQ && op <= GE;
  FOR_EACH_ELEMENT(p, i) {
    C x = LOAD(T)(p.addr[1], operand_offset(p, 1, i));
    C y = LOAD(T)(p.addr[2], operand_offset(p, 2, i));
    uint o = operand_offset(p, 0, i);
    if (comparison)
      store_bool(p.addr[0], o, compare(op, x, y));
    else
      STORE(T)(p.addr[0], o, apply(op, x, y));
  }
}
#endif
