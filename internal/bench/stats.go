package bench

import (
	"math"
	"slices"
)

// Percentile returns the p-th percentile (0 < p <= 100) of xs by the
// nearest-rank method: the smallest sample such that at least p % of the
// samples are less than or equal to it. Nearest rank never reports a value
// that was not measured, which matters for the handful of jobs in one
// window. It returns NaN for no samples.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if p <= 0 {
		return s[0]
	}
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// Median is the middle sample, or the mean of the two middle ones for an
// even count; NaN for no samples. Used to summarise -runs K repetitions,
// where averaging the middle pair is the usual convention.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Slope is the least-squares slope dy/dx of the points (xs[i], ys[i]); 0 if
// fewer than two distinct x values. The soak uses it for RSS drift per
// minute, which is less fooled by one GC cycle than last-minus-first.
func Slope(xs, ys []float64) float64 {
	n := min(len(xs), len(ys))
	if n < 2 {
		return 0
	}
	var sx, sy float64
	for i := range n {
		sx += xs[i]
		sy += ys[i]
	}
	mx, my := sx/float64(n), sy/float64(n)
	var num, den float64
	for i := range n {
		dx := xs[i] - mx
		num += dx * (ys[i] - my)
		den += dx * dx
	}
	if den == 0 {
		return 0
	}
	return num / den
}
