#include "powertrain/predict/curves.h"

#include <algorithm>
#include <cmath>
#include <limits>

// The least-squares solver is a bounded Levenberg-Marquardt of our own rather
// than Eigen's (unsupported/Eigen/NonLinearOptimization, a MINPACK port):
// every problem here has at most 4 parameters and needs box bounds (rates
// > 0, the asymptote in a plausible range), which Eigen's solver does not
// take (a change of variables would do, at the price of steps that crawl near
// the bounds, where the fits of short curves often end). What remains is a
// 4x4 Cholesky and an active set, and no dependency. curves_test.cpp checks
// the gradients against finite differences and the recovery of known
// parameters.

namespace powertrain::predict {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kMaxIterations = 100;
// Converged when an accepted step lowers the cost by less than this share:
// far below the noise of any learning curve.
constexpr double kRelativeTolerance = 1e-9;

struct ParamBounds {
  std::array<double, kMaxCurveParams> low{};
  std::array<double, kMaxCurveParams> high{};
};

ParamBounds bounds_of(Family f, const FitBounds& b) {
  ParamBounds r;
  r.low.fill(-kInf);
  r.high.fill(kInf);
  r.low[0] = b.asymptote_low;
  r.high[0] = b.asymptote_high;
  switch (f) {
    case Family::flat:
    case Family::ilog2:
      break;
    case Family::exp3:
      r.low[2] = 1e-4;
      r.high[2] = 5.0;
      break;
    case Family::pow3:
      r.low[2] = 1e-3;
      r.high[2] = 5.0;
      break;
    case Family::pow4:
      r.low[2] = 1e-3;
      r.high[2] = 20.0;
      r.low[3] = 0.0;
      r.high[3] = 1000.0;
      break;
    case Family::mmf:
      r.low[2] = 1e-5;
      r.high[2] = 10.0;
      r.low[3] = 0.05;
      r.high[3] = 10.0;
      break;
    case Family::janoschek:
      r.low[2] = 1e-5;
      r.high[2] = 10.0;
      r.low[3] = 0.05;
      r.high[3] = 5.0;
      break;
  }
  return r;
}

// u * exp(-u) without inf * 0.
double u_exp_minus_u(double u) { return u < 700.0 ? u * std::exp(-u) : 0.0; }

// Cholesky solve of the symmetric p x p system a z = rhs (row-major a); false
// when a is not positive definite.
bool cholesky_solve(int p, std::array<double, 16> a, std::array<double, 4>& z) {
  for (int j = 0; j < p; ++j) {
    double d = a[j * 4 + j];
    for (int k = 0; k < j; ++k) d -= a[j * 4 + k] * a[j * 4 + k];
    if (!(d > 0.0) || !std::isfinite(d)) return false;
    d = std::sqrt(d);
    a[j * 4 + j] = d;
    for (int i = j + 1; i < p; ++i) {
      double s = a[i * 4 + j];
      for (int k = 0; k < j; ++k) s -= a[i * 4 + k] * a[j * 4 + k];
      a[i * 4 + j] = s / d;
    }
  }
  for (int i = 0; i < p; ++i) {  // L y = rhs
    double s = z[i];
    for (int k = 0; k < i; ++k) s -= a[i * 4 + k] * z[k];
    z[i] = s / a[i * 4 + i];
  }
  for (int i = p - 1; i >= 0; --i) {  // L' z = y
    double s = z[i];
    for (int k = i + 1; k < p; ++k) s -= a[k * 4 + i] * z[k];
    z[i] = s / a[i * 4 + i];
  }
  return true;
}

struct Problem {
  Family family;
  int p;
  std::span<const double> x, y;
  std::vector<double> w;  // scaled to a mean of 1
  ParamBounds bounds;

  double rss(std::span<const double> params) const {
    double s = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double r = y[i] - curve_value(family, params, x[i]);
      s += w[i] * r * r;
    }
    return std::isfinite(s) ? s : kInf;
  }

  // J' W J and J' W r at params.
  void normal_equations(std::span<const double> params, std::array<double, 16>& a, std::array<double, 4>& g) const {
    a.fill(0.0);
    g.fill(0.0);
    std::array<double, kMaxCurveParams> grad{};
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double r = y[i] - curve_gradient(family, params, x[i], std::span(grad.data(), p));
      for (int j = 0; j < p; ++j) {
        g[j] += w[i] * grad[j] * r;
        for (int k = 0; k <= j; ++k) a[j * 4 + k] += w[i] * grad[j] * grad[k];
      }
    }
    for (int j = 0; j < p; ++j)
      for (int k = j + 1; k < p; ++k) a[j * 4 + k] = a[k * 4 + j];
  }

  void clamp(std::span<double> params) const {
    for (int j = 0; j < p; ++j) params[j] = std::clamp(params[j], bounds.low[j], bounds.high[j]);
  }
};

// The family as c * u(x) + amp * v(x) for fixed nonlinear parameters q: the
// basis values u and v at x.
void linear_basis(Family f, std::span<const double> q, double x, double& u, double& v) {
  switch (f) {
    case Family::flat:
      u = 1.0;
      v = 0.0;
      return;
    case Family::ilog2:
      u = 1.0;
      v = -1.0 / std::log(x + 1.0);
      return;
    case Family::exp3:
      u = 1.0;
      v = -std::exp(-q[0] * x);
      return;
    case Family::pow3:
      u = 1.0;
      v = -std::pow(x, -q[0]);
      return;
    case Family::pow4:
      u = 1.0;
      v = -std::pow(x + q[1], -q[0]);
      return;
    case Family::mmf: {
      const double g = 1.0 / (1.0 + std::pow(q[0] * x, q[1]));
      u = 1.0 - g;
      v = g;
      return;
    }
    case Family::janoschek: {
      const double h = std::exp(-std::pow(q[0] * x, q[1]));
      u = 1.0 - h;
      v = h;
      return;
    }
  }
}

// The grid of nonlinear parameters for starting points.
std::vector<std::array<double, 2>> start_grid(Family f, double x_max) {
  std::vector<std::array<double, 2>> grid;
  switch (f) {
    case Family::flat:
    case Family::ilog2:
      grid.push_back({0.0, 0.0});
      break;
    case Family::exp3:
      for (double b = 3.0; b > 2e-4; b *= 0.5) grid.push_back({b, 0.0});
      break;
    case Family::pow3:
      for (double alpha : {0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0}) grid.push_back({alpha, 0.0});
      break;
    case Family::pow4:
      for (double alpha : {0.3, 0.6, 1.0, 2.0, 4.0})
        for (double shift : {0.0, 1.0, 3.0, 10.0, 30.0}) grid.push_back({alpha, shift});
      break;
    case Family::mmf:
    case Family::janoschek:
      // kappa = 1 / (the epoch where the curve is about half way), delta the steepness.
      for (double half = 0.5; half < 8.0 * std::max(x_max, 2.0); half *= 2.0)
        for (double delta : {0.5, 1.0, 2.0}) grid.push_back({1.0 / half, delta});
      break;
  }
  return grid;
}

// The best starting point: over the grid, the linear parameters solved by
// weighted least squares (the asymptote clamped to its bounds).
std::array<double, kMaxCurveParams> starting_point(const Problem& pr) {
  std::array<double, kMaxCurveParams> best{};
  double best_rss = kInf;
  double x_max = 1.0;
  for (double xi : pr.x) x_max = std::max(x_max, xi);
  const std::size_t n = pr.x.size();
  std::vector<double> u(n), v(n);
  for (const auto& q : start_grid(pr.family, x_max)) {
    double suu = 0, suv = 0, svv = 0, suy = 0, svy = 0;
    for (std::size_t i = 0; i < n; ++i) {
      linear_basis(pr.family, q, pr.x[i], u[i], v[i]);
      suu += pr.w[i] * u[i] * u[i];
      suv += pr.w[i] * u[i] * v[i];
      svv += pr.w[i] * v[i] * v[i];
      suy += pr.w[i] * u[i] * pr.y[i];
      svy += pr.w[i] * v[i] * pr.y[i];
    }
    double c = 0.0, amp = 0.0;
    const double det = suu * svv - suv * suv;
    if (pr.family == Family::flat || !(std::abs(det) > 1e-12 * suu * svv)) {
      c = suu > 0 ? suy / suu : 0.0;
    } else {
      c = (svv * suy - suv * svy) / det;
    }
    c = std::clamp(c, pr.bounds.low[0], pr.bounds.high[0]);
    if (pr.family != Family::flat && svv > 0) amp = (svy - c * suv) / svv;
    std::array<double, kMaxCurveParams> params{};
    params[0] = c;
    params[1] = amp;
    params[2] = q[0];
    params[3] = q[1];
    pr.clamp(std::span(params.data(), pr.p));
    const double s = pr.rss(std::span<const double>(params.data(), pr.p));
    if (s < best_rss) {
      best_rss = s;
      best = params;
    }
  }
  return best;
}

}  // namespace

std::string_view to_string(Family f) {
  switch (f) {
    case Family::flat: return "flat";
    case Family::ilog2: return "ilog2";
    case Family::exp3: return "exp3";
    case Family::pow3: return "pow3";
    case Family::pow4: return "pow4";
    case Family::mmf: return "mmf";
    case Family::janoschek: return "janoschek";
  }
  return "unknown";
}

int parameter_count(Family f) {
  switch (f) {
    case Family::flat: return 1;
    case Family::ilog2: return 2;
    case Family::exp3:
    case Family::pow3: return 3;
    case Family::pow4:
    case Family::mmf:
    case Family::janoschek: return 4;
  }
  return 1;
}

double curve_value(Family f, std::span<const double> p, double x) {
  switch (f) {
    case Family::flat: return p[0];
    case Family::ilog2: return p[0] - p[1] / std::log(x + 1.0);
    case Family::exp3: return p[0] - p[1] * std::exp(-p[2] * x);
    case Family::pow3: return p[0] - p[1] * std::pow(x, -p[2]);
    case Family::pow4: return p[0] - p[1] * std::pow(x + p[3], -p[2]);
    case Family::mmf: return p[0] - (p[0] - p[1]) / (1.0 + std::pow(p[2] * x, p[3]));
    case Family::janoschek: return p[0] - (p[0] - p[1]) * std::exp(-std::pow(p[2] * x, p[3]));
  }
  return std::nan("");
}

double curve_gradient(Family f, std::span<const double> p, double x, std::span<double> d) {
  switch (f) {
    case Family::flat:
      d[0] = 1.0;
      return p[0];
    case Family::ilog2: {
      const double inv = 1.0 / std::log(x + 1.0);
      d[0] = 1.0;
      d[1] = -inv;
      return p[0] - p[1] * inv;
    }
    case Family::exp3: {
      const double e = std::exp(-p[2] * x);
      d[0] = 1.0;
      d[1] = -e;
      d[2] = p[1] * x * e;
      return p[0] - p[1] * e;
    }
    case Family::pow3: {
      const double e = std::pow(x, -p[2]);
      d[0] = 1.0;
      d[1] = -e;
      d[2] = p[1] * e * std::log(x);
      return p[0] - p[1] * e;
    }
    case Family::pow4: {
      const double xs = x + p[3];
      const double e = std::pow(xs, -p[2]);
      d[0] = 1.0;
      d[1] = -e;
      d[2] = p[1] * e * std::log(xs);
      d[3] = p[1] * p[2] * e / xs;
      return p[0] - p[1] * e;
    }
    case Family::mmf: {
      // g = 1 / (1 + u), u = (kappa x)^delta; u g^2 = g (1 - g) keeps it finite.
      const double kx = p[2] * x;
      const double g = 1.0 / (1.0 + std::pow(kx, p[3]));
      const double span = p[0] - p[1];
      const double ug2 = g * (1.0 - g);
      d[0] = 1.0 - g;
      d[1] = g;
      d[2] = span * ug2 * p[3] / p[2];
      d[3] = span * ug2 * std::log(kx);
      return p[0] - span * g;
    }
    case Family::janoschek: {
      const double kx = p[2] * x;
      const double u = std::pow(kx, p[3]);
      const double h = std::exp(-u);
      const double span = p[0] - p[1];
      const double uh = u_exp_minus_u(u);
      d[0] = 1.0 - h;
      d[1] = h;
      d[2] = span * uh * p[3] / p[2];
      d[3] = span * uh * std::log(kx);
      return p[0] - span * h;
    }
  }
  return std::nan("");
}

CurveFit fit_curve(Family f, std::span<const double> x, std::span<const double> y, std::span<const double> w,
                   const FitBounds& bounds, std::span<const double> start) {
  CurveFit fit;
  fit.family = f;
  const int p = parameter_count(f);
  const std::size_t n = x.size();
  if (y.size() != n || (!w.empty() && w.size() != n) || n < static_cast<std::size_t>(p)) return fit;
  if (!(bounds.asymptote_low <= bounds.asymptote_high)) return fit;
  Problem pr{f, p, x, y, std::vector<double>(n, 1.0), bounds_of(f, bounds)};
  double w_sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!w.empty()) pr.w[i] = w[i];
    if (!std::isfinite(x[i]) || !(x[i] > 0.0) || !std::isfinite(y[i]) || !(pr.w[i] > 0.0) || !std::isfinite(pr.w[i]))
      return fit;
    w_sum += pr.w[i];
  }
  for (double& wi : pr.w) wi *= static_cast<double>(n) / w_sum;

  std::array<double, kMaxCurveParams> theta{};
  if (static_cast<int>(start.size()) == p) {
    std::copy(start.begin(), start.end(), theta.begin());
    pr.clamp(std::span(theta.data(), p));
  } else {
    theta = starting_point(pr);
  }
  auto view = [p](std::array<double, kMaxCurveParams>& t) { return std::span<double>(t.data(), p); };
  double cost = pr.rss(view(theta));
  double lambda = 1e-3;
  std::array<double, 16> a{};
  std::array<double, 4> g{};
  int steps = 0;
  for (int it = 0; it < kMaxIterations && cost > 0.0; ++it) {
    pr.normal_equations(view(theta), a, g);
    // A parameter at a bound that the descent direction g pushes outward stays
    // there this iteration (active set), so steps do not creep along the bound.
    for (int j = 0; j < p; ++j) {
      const bool at_low = theta[j] <= pr.bounds.low[j] && g[j] < 0.0;
      const bool at_high = theta[j] >= pr.bounds.high[j] && g[j] > 0.0;
      if (!at_low && !at_high) continue;
      g[j] = 0.0;
      for (int k = 0; k < p; ++k) a[j * 4 + k] = a[k * 4 + j] = 0.0;
      a[j * 4 + j] = 1.0;
    }
    bool accepted = false;
    double new_cost = cost;
    std::array<double, kMaxCurveParams> trial{};
    while (lambda < 1e12) {
      std::array<double, 16> damped = a;
      double max_diag = 0.0;
      for (int j = 0; j < p; ++j) max_diag = std::max(max_diag, a[j * 4 + j]);
      for (int j = 0; j < p; ++j) damped[j * 4 + j] += lambda * a[j * 4 + j] + 1e-12 * max_diag + 1e-300;
      std::array<double, 4> step = g;
      if (cholesky_solve(p, damped, step)) {
        trial = theta;
        for (int j = 0; j < p; ++j) trial[j] += step[j];
        pr.clamp(view(trial));
        new_cost = pr.rss(view(trial));
        if (new_cost < cost) {
          accepted = true;
          break;
        }
      }
      lambda *= 4.0;
    }
    if (!accepted) break;
    ++steps;
    double change = 0.0;
    for (int j = 0; j < p; ++j) change = std::max(change, std::abs(trial[j] - theta[j]) / (std::abs(theta[j]) + 1e-8));
    const double gain = cost - new_cost;
    theta = trial;
    cost = new_cost;
    lambda = std::max(lambda / 3.0, 1e-9);
    if (gain <= kRelativeTolerance * cost || change < 1e-10) break;
  }

  fit.ok = std::isfinite(cost);
  fit.iterations = steps;
  fit.params.assign(theta.begin(), theta.begin() + p);
  fit.rss = cost;
  fit.sigma = static_cast<int>(n) > p ? std::sqrt(cost / static_cast<double>(static_cast<int>(n) - p)) : 0.0;
  return fit;
}

}  // namespace powertrain::predict
