// Math the GLSL built-ins lack or leave undefined where C's <cmath> is defined: erf, pow of a
// negative or zero base, and the f64 transcendentals (GLSL's exp, log, tanh and pow take at most
// 32-bit floats). The f64 versions are range reduction plus series, accurate to a few ulp.

// Constants of GELU and its derivative, as double literals in f64 variants.
#if T_KIND == 1
#define K_INV_SQRT2 0.70710678118654752440LF
#define K_SQRT_2_OVER_PI 0.79788456080286535588LF
#define K_INV_SQRT_2PI 0.39894228040143267794LF
#define K_GELU_CUBIC 0.044715LF
#else
#define K_INV_SQRT2 0.70710678118654752440
#define K_SQRT_2_OVER_PI 0.79788456080286535588
#define K_INV_SQRT_2PI 0.39894228040143267794
#define K_GELU_CUBIC 0.044715
#endif

// erf for f32 (Abramowitz and Stegun 7.1.26, absolute error below 1.5e-7).
float erf_f32(float x) {
  float a = abs(x), t = 1.0 / (1.0 + 0.3275911 * a);
  float poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  float r = 1.0 - poly * exp(-a * a);
  return x < 0.0 ? -r : r;
}

// C's pow for f32: a negative base takes integer exponents only; 0 ** negative is infinite.
float pow_f32(float x, float y) {
  if (y == 0.0 || x == 1.0) return 1.0;
  if (isnan(x) || isnan(y)) return x + y;
  bool odd_integer = (y == floor(y)) && abs(y) < 16777216.0 && (int(mod(abs(y), 2.0)) == 1);
  if (x == 0.0) {
    float zero = odd_integer ? x : 0.0;
    return y < 0.0 ? (odd_integer ? 1.0 / x : 1.0 / 0.0) : zero;
  }
  if (x < 0.0) {
    if (y != floor(y) && !isinf(y)) return 0.0 / 0.0;
    float r = pow(-x, y);
    return odd_integer ? -r : r;
  }
  return pow(x, y);
}

#if USE_F64
const double LN2_HI = 6.93147180369123816490e-01LF;
const double LN2_LO = 1.90821492927058770002e-10LF;

double exp_f64(double x) {
  if (isnan(x)) return x;
  if (x > 709.782712893384LF) return 1.0LF / 0.0LF;
  if (x < -745.2LF) return 0.0LF;
  double k = roundEven(x * 1.44269504088896340736LF);
  double r = (x - k * LN2_HI) - k * LN2_LO;
  double term = 1.0LF, sum = 1.0LF;
  for (int n = 1; n <= 14; ++n) {
    term *= r / double(n);
    sum += term;
  }
  // Two steps so that 2^k stays representable near the ends of the range.
  int half_k = int(k) / 2;
  return ldexp(ldexp(sum, half_k), int(k) - half_k);
}

// exp(x) - 1 without cancellation near 0.
double expm1_f64(double x) {
  if (abs(x) >= 0.5LF) return exp_f64(x) - 1.0LF;
  double term = x, sum = x;
  for (int n = 2; n <= 18; ++n) {
    term *= x / double(n);
    sum += term;
  }
  return sum;
}

double log_f64(double x) {
  if (isnan(x) || x < 0.0LF) return 0.0LF / 0.0LF;
  if (x == 0.0LF) return -1.0LF / 0.0LF;
  if (isinf(x)) return x;
  int e;
  double m = frexp(x, e);
  if (m < 0.70710678118654752440LF) {
    m *= 2.0LF;
    e -= 1;
  }
  double z = (m - 1.0LF) / (m + 1.0LF), z2 = z * z, power = z, sum = 0.0LF;
  for (int n = 0; n < 12; ++n) {
    sum += power / double(2 * n + 1);
    power *= z2;
  }
  return double(e) * LN2_HI + (2.0LF * sum + double(e) * LN2_LO);
}

double tanh_f64(double x) {
  if (abs(x) > 22.0LF) return x > 0.0LF ? 1.0LF : -1.0LF;
  double e = expm1_f64(2.0LF * x);
  return e / (e + 2.0LF);
}

double pow_f64(double x, double y) {
  if (y == 0.0LF || x == 1.0LF) return 1.0LF;
  if (isnan(x) || isnan(y)) return x + y;
  bool integer = y == floor(y);
  bool odd_integer = integer && abs(y) < 9007199254740992.0LF && mod(abs(y), 2.0LF) == 1.0LF;
  if (x == 0.0LF) {
    double zero = odd_integer ? x : 0.0LF;
    return y < 0.0LF ? (odd_integer ? 1.0LF / x : 1.0LF / 0.0LF) : zero;
  }
  if (isinf(y)) {
    double a = abs(x);
    if (a == 1.0LF) return 1.0LF;
    return (a > 1.0LF) == (y > 0.0LF) ? 1.0LF / 0.0LF : 0.0LF;
  }
  if (x < 0.0LF && !integer) return 0.0LF / 0.0LF;
  double r = exp_f64(y * log_f64(abs(x)));
  return (x < 0.0LF && odd_integer) ? -r : r;
}

// erf: the Maclaurin series below 3 (cancellation costs at most 3 digits there), the continued
// fraction of erfc above.
double erf_f64(double x) {
  double a = abs(x), r;
  if (a < 3.0LF) {
    double x2 = a * a, term = a, sum = a;
    for (int n = 1; n < 60; ++n) {
      term *= -x2 / double(n);
      double add = term / double(2 * n + 1);
      sum += add;
      if (abs(add) < 1e-17LF * abs(sum)) break;
    }
    r = sum * 1.12837916709551257390LF;
  } else if (a < 6.5LF) {
    double f = a;
    for (int n = 90; n >= 1; --n) f = a + (double(n) * 0.5LF) / f;
    r = 1.0LF - exp_f64(-a * a) * 0.56418958354775628695LF / f;
  } else {
    r = 1.0LF;
  }
  return x < 0.0LF ? -r : r;
}
#endif
