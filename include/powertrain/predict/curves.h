#pragma once
// Parametric learning-curve families and their fit: the building blocks of
// predict::predict_curve (predict.h), public for tests and for tools that want
// one family's fit. Pure numerics, no torch.
//
//   FitBounds b{.asymptote_low = 0.0, .asymptote_high = 1.0};
//   CurveFit f = fit_curve(Family::exp3, epochs, metrics, weights, b);
//   double at_50 = curve_value(f.family, f.params, 50.0);
//
// Every family is a function of the epoch x (>= 1) with an asymptote c as
// x grows; with the sign of its amplitude free it may rise (the usual
// validation metric) or fall towards c:
//   flat       c                                   (no progress; noise only)
//   ilog2      c - a / ln(x + 1)
//   exp3       c - a exp(-b x)                     b in [1e-4, 5]
//   pow3       c - a x^-alpha                      alpha in [1e-3, 5]
//   pow4       c - a (x + s)^-alpha                alpha in [1e-3, 20], s in [0, 1000]
//   mmf        c - (c - beta) / (1 + (kappa x)^delta)   Morgan-Mercer-Flodin
//   janoschek  c - (c - beta) exp(-(kappa x)^delta)     Janoschek / Weibull
// Most are families of Domhan, Springenberg and Hutter (IJCAI 2015, "Speeding
// up automatic hyperparameter optimization of deep neural networks by
// extrapolation of learning curves"), some reparameterized (ilog2 with
// ln(x + 1) so that epoch 1 is finite, pow4 with a shift s); exp3 and flat
// are added, flat for runs that have stopped improving. Parameters are in the
// order written, the asymptote c first.
#include <array>
#include <span>
#include <string_view>
#include <vector>

namespace powertrain::predict {

enum class Family { flat, ilog2, exp3, pow3, pow4, mmf, janoschek };

/// Every family, in the order above.
inline constexpr std::array<Family, 7> kFamilies = {Family::flat, Family::ilog2, Family::exp3,   Family::pow3,
                                                   Family::pow4, Family::mmf,   Family::janoschek};
inline constexpr int kMaxCurveParams = 4;

std::string_view to_string(Family f);
/// Number of parameters of the family (1 to kMaxCurveParams).
int parameter_count(Family f);

/// The family's value at epoch x with parameters p (parameter_count(f) of them).
double curve_value(Family f, std::span<const double> p, double x);
/// The value as curve_value, and its partial derivatives by each parameter in
/// `gradient` (parameter_count(f) of them).
double curve_gradient(Family f, std::span<const double> p, double x, std::span<double> gradient);

/// Where the asymptote c may lie. The other parameters have fixed ranges
/// (above) or are free.
struct FitBounds {
  double asymptote_low = 0.0;
  double asymptote_high = 1.0;
};

/// A family's weighted least-squares fit.
struct CurveFit {
  Family family = Family::flat;
  bool ok = false;          ///< false: too few points for the family, or the data were not finite
  std::vector<double> params;
  double rss = 0.0;         ///< weighted residual sum of squares (weights scaled to a mean of 1)
  double sigma = 0.0;       ///< residual standard deviation: sqrt(rss / (n - parameters)), 0 when n = parameters
  int iterations = 0;       ///< Levenberg-Marquardt steps taken
};

/// Fits the family to the points (x[i], y[i]) with weights w[i] > 0 (empty:
/// all 1) by minimizing sum w (y - f(x))^2 within the bounds: starting points
/// from a grid over the family's nonlinear parameters, each with its linear
/// ones (c and the amplitude) solved exactly, then a bounded
/// Levenberg-Marquardt refinement of the best. `start`, when it holds
/// parameter_count(f) values, replaces the grid (a refit near a known fit).
/// Needs at least parameter_count(f) points (ok is false otherwise).
CurveFit fit_curve(Family f, std::span<const double> x, std::span<const double> y, std::span<const double> w,
                   const FitBounds& bounds, std::span<const double> start = {});

}  // namespace powertrain::predict
