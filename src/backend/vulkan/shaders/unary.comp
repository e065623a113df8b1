#version 460
// out = op(in) for the UnaryOp enum of backend.h, in T's compute type; integer dtypes take the
// ops the front-end sends them (neg, abs, relu, clamp, pow, affine), wrapping on overflow.
#include "elementwise.glsl"
#include "math.glsl"

#define NEG 0
#define EXP 1
#define LOG 2
#define SQRT 3
#define RSQRT 4
#define ABS 5
#define TANH 6
#define SIGMOID 7
#define RELU 8
#define GELU_ERF 9
#define GELU_TANH 10
#define CLAMP 11
#define POW_SCALAR 12
#define AFFINE 13

#if T_KIND == 0
#define C float
#define EXP_C exp
#define LOG_C log
#define TANH_C tanh
#define ERF_C erf_f32
#define POW_C pow_f32
#elif T_KIND == 1
#define C double
#define EXP_C exp_f64
#define LOG_C log_f64
#define TANH_C tanh_f64
#define ERF_C erf_f64
#define POW_C pow_f64
#endif

#if T_KIND <= 1
C apply(uint op, C x, C a, C b) {
  const C inv_sqrt2 = C(K_INV_SQRT2), sqrt_2_over_pi = C(K_SQRT_2_OVER_PI);
  switch (op) {
    case NEG: return -x;
    case EXP: return EXP_C(x);
    case LOG: return LOG_C(x);
    case SQRT: return sqrt(x);
    case RSQRT: return C(1) / sqrt(x);
    case ABS: return abs(x);
    case TANH: return TANH_C(x);
    case SIGMOID: {
      // exp(-|x|) never overflows; sigmoid(x) = e / (1 + e) for negative x.
      C e = EXP_C(-abs(x)), r = C(1) / (C(1) + e);
      return x >= C(0) ? r : e * r;
    }
    // NaN is kept explicitly: NVIDIA's compiler turns these selects into a NaN-dropping max/min.
    case RELU: return (isnan(x) || x >= C(0)) ? x : C(0);
    case GELU_ERF: return C(0.5) * x * (C(1) + ERF_C(x * inv_sqrt2));
    case GELU_TANH: return C(0.5) * x * (C(1) + TANH_C(sqrt_2_over_pi * (x + C(K_GELU_CUBIC) * x * x * x)));
    case CLAMP: {
      // max before min, each keeping a NaN x, as the CPU's std::min(std::max(x, a), b).
      if (isnan(x)) return x;
      C lo = (x < a) ? a : x;
      return (b < lo) ? b : lo;
    }
    case POW_SCALAR: return a == C(2) ? x * x : POW_C(x, a);
    default: return x * a + b;
  }
}
#else
#define C CT(T)
// base ** e by repeated squaring, wrapping; negative powers other than of 1 and -1 round to 0.
C int_pow(C base, int64_t e) {
  if (e < 0) return base == C(1) ? C(1) : base == C(-1) ? ((e & 1) != 0 ? C(-1) : C(1)) : C(0);
  C result = C(1);
  for (; e != 0; e >>= 1) {
    if ((e & 1) != 0) result *= base;
    base *= base;
  }
  return result;
}
C apply(uint op, C x, int64_t a, int64_t b) {
  switch (op) {
    case NEG: return -x;
    case ABS: return x < C(0) ? -x : x;
    case RELU: return x < C(0) ? C(0) : x;
    case CLAMP: return min(max(x, C(a)), C(b));
    case POW_SCALAR: return int_pow(x, a);
    default: return x * C(a) + C(b);
  }
}
#endif

#ifdef VEC4
void main() {
  ElementwiseParams p = ElementwiseParams(params_address);
  float a = p.alpha_f, b = p.beta_f;
  uint op = p.op;
  FOR_EACH_VEC4(p, i) {
    vec4 x = Vec4Buf(p.addr[1]).v[i];
    Vec4Buf(p.addr[0]).v[i] = vec4(apply(op, x.x, a, b), apply(op, x.y, a, b),
                                   apply(op, x.z, a, b), apply(op, x.w, a, b));
  }
  FOR_EACH_TAIL(p, i) store_f32(p.addr[0], i, apply(op, load_f32(p.addr[1], i), a, b));
}
#else
void main() {
  ElementwiseParams p = ElementwiseParams(params_address);
#if T_KIND == 0
  float a = p.alpha_f, b = p.beta_f;
#elif T_KIND == 1
  double a = uint64BitsToDouble(p.alpha_bits), b = uint64BitsToDouble(p.beta_bits);
#else
  int64_t a = p.alpha_i, b = p.beta_i;
#endif
  uint op = p.op;
  FOR_EACH_ELEMENT(p, i) {
    C x = LOAD(T)(p.addr[1], operand_offset(p, 1, i));
    STORE(T)(p.addr[0], operand_offset(p, 0, i), apply(op, x, a, b));
  }
}
#endif
