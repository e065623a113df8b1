// Shared by every shader: buffer access through device addresses, and loads and stores of each
// dtype converted to its compute type (f32 for f32/f16/bf16, double, int, int64_t, int for bool).
// A variant enables the dtypes it touches with USE_<DTYPE>=1, so that a module declares only the
// storage capabilities it needs. Every shader receives one push constant: the device address of
// its parameter block.
#extension GL_EXT_buffer_reference : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#if USE_F16 || USE_BF16
#extension GL_EXT_shader_16bit_storage : require
#endif
#if USE_BOOL
#extension GL_EXT_shader_8bit_storage : require
#endif
#if USE_SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_vote : require
#endif

#define PASTE(a, b) a##b
#define XPASTE(a, b) PASTE(a, b)
// LOAD(T)(address, index) and STORE(T)(address, index, value) for a dtype role T.
#define LOAD(T) XPASTE(load_, T)
#define STORE(T) XPASTE(store_, T)
#define CT(T) XPASTE(ct_, T)
#define ct_f32 float
#define ct_f16 float
#define ct_bf16 float
#define ct_f64 double
#define ct_i32 int
#define ct_i64 int64_t
#define ct_bool int

layout(push_constant) uniform PushConstants { uint64_t params_address; };

layout(buffer_reference, std430, buffer_reference_align = 4) buffer F32Buf { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer I32Buf { int v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer U32Buf { uint v[]; };
layout(buffer_reference, std430, buffer_reference_align = 8) buffer I64Buf { int64_t v[]; };

float load_f32(uint64_t a, uint i) { return F32Buf(a).v[i]; }
void store_f32(uint64_t a, uint i, float x) { F32Buf(a).v[i] = x; }
int load_i32(uint64_t a, uint i) { return I32Buf(a).v[i]; }
void store_i32(uint64_t a, uint i, int x) { I32Buf(a).v[i] = x; }
int64_t load_i64(uint64_t a, uint i) { return I64Buf(a).v[i]; }
void store_i64(uint64_t a, uint i, int64_t x) { I64Buf(a).v[i] = x; }

#if USE_F64
#extension GL_EXT_shader_explicit_arithmetic_types_float64 : require
layout(buffer_reference, std430, buffer_reference_align = 8) buffer F64Buf { double v[]; };
double load_f64(uint64_t a, uint i) { return F64Buf(a).v[i]; }
void store_f64(uint64_t a, uint i, double x) { F64Buf(a).v[i] = x; }
#endif

#if USE_F16 || USE_BF16
layout(buffer_reference, std430, buffer_reference_align = 2) buffer U16Buf { uint16_t v[]; };

// IEEE binary16 <-> binary32, round to nearest even, subnormals included: the same bit-exact
// conversions as the CPU's Half.
float half_bits_to_float(uint h) {
  uint sign = (h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 0x1fu) return uintBitsToFloat(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0u) {
    float value = float(mantissa) * 5.9604644775390625e-08;
    return (sign != 0u) ? -value : value;
  }
  return uintBitsToFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}
uint float_to_half_bits(float value) {
  uint f = floatBitsToUint(value);
  uint sign = (f >> 16) & 0x8000u, magnitude = f & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) return sign | 0x7c00u | (magnitude > 0x7f800000u ? 0x200u : 0u);
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;
  if (magnitude < 0x38800000u) return sign | uint(roundEven(uintBitsToFloat(magnitude) * 16777216.0));
  uint rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);
  return sign | ((rounded - 0x38000000u) >> 13);
}
float load_f16(uint64_t a, uint i) { return half_bits_to_float(uint(U16Buf(a).v[i])); }
void store_f16(uint64_t a, uint i, float x) { U16Buf(a).v[i] = uint16_t(float_to_half_bits(x)); }

// bfloat16: the upper half of an f32, rounded to nearest even; NaN stays quiet.
float load_bf16(uint64_t a, uint i) { return uintBitsToFloat(uint(U16Buf(a).v[i]) << 16); }
void store_bf16(uint64_t a, uint i, float x) {
  uint u = floatBitsToUint(x);
  uint bits = (u & 0x7fffffffu) > 0x7f800000u ? ((u >> 16) | 0x40u)
                                              : ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  U16Buf(a).v[i] = uint16_t(bits);
}
#endif

#if USE_BOOL
layout(buffer_reference, std430, buffer_reference_align = 1) buffer U8Buf { uint8_t v[]; };
int load_bool(uint64_t a, uint i) { return uint(U8Buf(a).v[i]) != 0u ? 1 : 0; }
void store_bool(uint64_t a, uint i, int x) { U8Buf(a).v[i] = uint8_t(x != 0 ? 1u : 0u); }
#endif

// Workgroup-wide sums and extremes over shared memory: every invocation passes its value and all
// receive the result. WG is the workgroup size, a power of two.
#define WG 256
shared float wg_f32[WG];

float workgroup_sum(float x) {
  uint t = gl_LocalInvocationIndex;
  barrier();
  wg_f32[t] = x;
  barrier();
  for (uint s = WG / 2; s > 0; s >>= 1) {
    if (t < s) wg_f32[t] += wg_f32[t + s];
    barrier();
  }
  return wg_f32[0];
}

// NaN wins, as in torch.max.
float max_nan(float a, float b) { return (a > b || isnan(a)) ? a : b; }

float workgroup_max(float x) {
  uint t = gl_LocalInvocationIndex;
  barrier();
  wg_f32[t] = x;
  barrier();
  for (uint s = WG / 2; s > 0; s >>= 1) {
    if (t < s) wg_f32[t] = max_nan(wg_f32[t], wg_f32[t + s]);
    barrier();
  }
  return wg_f32[0];
}

// The same over segments of `lanes` consecutive invocations (a power of two dividing WG), each
// segment receiving its own result: a workgroup working on WG / lanes rows at once.
#if USE_SUBGROUP
// Each subgroup reduces in registers, then one shared-memory step combines the subgroups of a
// segment. The host picks these variants only where the device reports arithmetic subgroup
// operations in compute shaders and a subgroup size of at most `lanes`; subgroups of a 1-D
// workgroup are runs of consecutive invocations.
float segment_sum(float x, uint lanes) {
  float s = subgroupAdd(x);
  uint per = lanes / gl_SubgroupSize;
  if (per == 1u) return s;
  barrier();
  if (subgroupElect()) wg_f32[gl_SubgroupID] = s;
  barrier();
  uint first = gl_SubgroupID & ~(per - 1u);
  float total = 0.0;
  for (uint i = 0; i < per; ++i) total += wg_f32[first + i];
  return total;
}

float segment_max(float x, uint lanes) {
  // subgroupMax leaves NaN undefined; NaN wins here as in max_nan.
  float m = subgroupAny(isnan(x)) ? uintBitsToFloat(0x7fc00000u) : subgroupMax(x);
  uint per = lanes / gl_SubgroupSize;
  if (per == 1u) return m;
  barrier();
  if (subgroupElect()) wg_f32[gl_SubgroupID] = m;
  barrier();
  uint first = gl_SubgroupID & ~(per - 1u);
  float total = wg_f32[first];
  for (uint i = 1; i < per; ++i) total = max_nan(total, wg_f32[first + i]);
  return total;
}
#else
float segment_sum(float x, uint lanes) {
  uint t = gl_LocalInvocationIndex;
  barrier();
  wg_f32[t] = x;
  barrier();
  for (uint s = lanes / 2; s > 0; s >>= 1) {
    if ((t & (lanes - 1)) < s) wg_f32[t] += wg_f32[t + s];
    barrier();
  }
  return wg_f32[t & ~(lanes - 1)];
}

float segment_max(float x, uint lanes) {
  uint t = gl_LocalInvocationIndex;
  barrier();
  wg_f32[t] = x;
  barrier();
  for (uint s = lanes / 2; s > 0; s >>= 1) {
    if ((t & (lanes - 1)) < s) wg_f32[t] = max_nan(wg_f32[t], wg_f32[t + s]);
    barrier();
  }
  return wg_f32[t & ~(lanes - 1)];
}
#endif

#if USE_F64
shared double wg_f64[WG];
double workgroup_sum(double x) {
  uint t = gl_LocalInvocationIndex;
  barrier();
  wg_f64[t] = x;
  barrier();
  for (uint s = WG / 2; s > 0; s >>= 1) {
    if (t < s) wg_f64[t] += wg_f64[t + s];
    barrier();
  }
  return wg_f64[0];
}
double max_nan(double a, double b) { return (a > b || isnan(a)) ? a : b; }
double workgroup_max(double x) {
  uint t = gl_LocalInvocationIndex;
  barrier();
  wg_f64[t] = x;
  barrier();
  for (uint s = WG / 2; s > 0; s >>= 1) {
    if (t < s) wg_f64[t] = max_nan(wg_f64[t], wg_f64[t + s]);
    barrier();
  }
  return wg_f64[0];
}
#endif
