package main

import (
	"errors"
	"math"
)

// Estimate is a yearly probability with its 95% interval.
type Estimate struct{ P, Lo, Hi float64 }

// z95 is the two-sided 95% normal quantile.
const z95 = 1.959964

// poissonCI is a 95% interval for the mean of a Poisson count c
// (Wilson-Hilferty's approximation to the exact chi-square interval; its
// error is under 1% from c = 1 up).
func poissonCI(c float64) (lo, hi float64) {
	if c > 0 {
		lo = c * math.Pow(1-1/(9*c)-z95/(3*math.Sqrt(c)), 3)
	}
	c1 := c + 1
	hi = c1 * math.Pow(1-1/(9*c1)+z95/(3*math.Sqrt(c1)), 3)
	return max(lo, 0), hi
}

// perYear turns a rate per segment-year into the probability of at least
// one loss in a year.
func perYear(rate float64) float64 { return -math.Expm1(-rate) }

// Direct is the loss probability counted in the simulation itself: losses
// over segment-years, with a Poisson interval. It ignores that losses on
// shared nodes come together, so its interval is too narrow on small grids.
func (r *Result) Direct() Estimate {
	lo, hi := poissonCI(float64(r.Losses))
	e := r.SegYears
	return Estimate{P: perYear(float64(r.Losses) / e), Lo: perYear(lo / e), Hi: perYear(hi / e)}
}

// chain is one segment's continuous-time Markov chain: state j is the
// number of its shards gone for good (0..m), state m+1 is loss. rate[j][j']
// is per year.
type chain struct {
	m    int
	rate [][]float64
}

func newChain(m int) chain {
	c := chain{m: m, rate: make([][]float64, m+1)}
	for j := range c.rate {
		c.rate[j] = make([]float64, m+2)
	}
	return c
}

// lossRate is the long-run rate (per year) at which the chain reaches
// loss, started afresh each time: P(loss in a cycle) / E[cycle length],
// where a cycle leaves state 0 and ends back in 0 or lost (Wald's identity
// makes 1/lossRate the mean time to loss from state 0). The small
// probabilities are solved for directly, so rates near 1e-15 keep their
// digits.
func (c chain) lossRate() float64 {
	m := c.m
	q := make([]float64, m+1)
	for j := range c.rate {
		for j2, r := range c.rate[j] {
			if j2 != j {
				q[j] += r
			}
		}
	}
	// h[j]: P(lost before back in 0 | j); t[j]: expected time to either.
	a := make([][]float64, m)
	bh := make([]float64, m)
	bt := make([]float64, m)
	for j := 1; j <= m; j++ {
		a[j-1] = make([]float64, m)
		a[j-1][j-1] = q[j]
		for j2 := 1; j2 <= m; j2++ {
			if j2 != j {
				a[j-1][j2-1] -= c.rate[j][j2]
			}
		}
		bh[j-1] = c.rate[j][m+1]
		bt[j-1] = 1
	}
	h := solve(a, bh)
	t := solve(a, bt)
	pLoss := c.rate[0][m+1] / q[0]
	cycle := 1 / q[0]
	for j := 1; j <= m; j++ {
		pLoss += c.rate[0][j] / q[0] * h[j-1]
		cycle += c.rate[0][j] / q[0] * t[j-1]
	}
	return pLoss / cycle
}

// solve solves a x = b by Gaussian elimination with partial pivoting; a
// and b are copied.
func solve(a [][]float64, b []float64) []float64 {
	n := len(b)
	m := make([][]float64, n)
	for i := range a {
		m[i] = append(append([]float64(nil), a[i]...), b[i])
	}
	for col := range n {
		p := col
		for r := col + 1; r < n; r++ {
			if math.Abs(m[r][col]) > math.Abs(m[p][col]) {
				p = r
			}
		}
		m[col], m[p] = m[p], m[col]
		for r := col + 1; r < n; r++ {
			f := m[r][col] / m[col][col]
			for k := col; k <= n; k++ {
				m[r][k] -= f * m[col][k]
			}
		}
	}
	x := make([]float64, n)
	for r := n - 1; r >= 0; r-- {
		s := m[r][n]
		for k := r + 1; k < n; k++ {
			s -= m[r][k] * x[k]
		}
		x[r] = s / m[r][r]
	}
	return x
}

// minRepairs is how many repairs from a state it takes to fit the
// state's own repair rates; with fewer, a deeper state borrows the rates
// of the state above it, whose repairs are the same process (detection,
// queue, transfer) seen many more times.
const minRepairs = 20

// errNoRepairs: the run saw no repair to fit the chain's repair rates to.
var errNoRepairs = errors.New("no repairs in the simulation to fit repair rates to; simulate longer or more nodes")

// Chain is the loss probability from the segment Markov chain fitted to
// the run: failures at (n-j)·λ (λ the configured AFR, or the rate the run
// saw for Weibull lifetimes); each zone's loss at ZoneAFR, taking the
// shards placement put there; and repairs from j lost shards to j' at the
// rate the simulation measured (repairs seen / segment-time spent in j).
// A state the run repaired from fewer than minRepairs times borrows the
// rates of the nearest shallower one it did; states the policy does not
// repair get none. The interval holds every fitted repair rate at the ends
// of its 95% Poisson interval at once, so it is wider than a joint 95%
// interval; the count behind each rate is the repairs seen, but at most
// the nodes counted down in the run, since the repairs one node's failure
// causes are alike. It is the statistical error only, not the model's (see
// docs/DURABILITY.md).
func (r *Result) Chain() (Estimate, error) {
	n, m := r.K+r.M, r.M
	lambda := r.AFR
	if r.WeibullShape > 0 && r.WeibullShape != 1 {
		lambda = float64(r.Deaths-r.ZoneDeaths) / r.NodeYears
	}
	segYears := func(j int) float64 { return r.TimeIn[j] / year }
	build := func(scale func(j int) float64) (chain, error) {
		c := newChain(m)
		for j := 0; j <= m; j++ {
			c.rate[j][j+1] += float64(n-j) * lambda
			if r.Zones > 0 && r.ZoneAFR > 0 {
				// Placement spreads the n shards evenly: n%Z zones hold
				// q+1, the others q (q = n/Z). A zone's loss takes all
				// of its shards, counted as if none of them was gone yet.
				q, rem := n/r.Zones, n%r.Zones
				c.rate[j][min(j+q+1, m+1)] += float64(rem) * r.ZoneAFR
				if q > 0 {
					c.rate[j][min(j+q, m+1)] += float64(r.Zones-rem) * r.ZoneAFR
				}
			}
		}
		from := -1 // the state whose fitted repair rates a state uses
		for j := 1; j <= m; j++ {
			if !r.Policy.Needs(n-j, r.K, r.M) {
				continue
			}
			if total(r.RepairN[j]) >= minRepairs && segYears(j) > 0 || from < 0 && total(r.RepairN[j]) > 0 {
				from = j
			}
			if from < 0 {
				return c, errNoRepairs
			}
			f := scale(from)
			for j2 := 0; j2 < from; j2++ {
				c.rate[j][j2] += float64(r.RepairN[from][j2]) / segYears(from) * f
			}
		}
		return c, nil
	}
	c, err := build(func(int) float64 { return 1 })
	if err != nil {
		return Estimate{}, err
	}
	// Repairs after one node went down are not independent draws: count
	// at most one per node counted down.
	eff := func(j int) float64 { return float64(max(1, min(total(r.RepairN[j]), r.DownEvents))) }
	slow, _ := build(func(j int) float64 { lo, _ := poissonCI(eff(j)); return lo / eff(j) })
	fast, _ := build(func(j int) float64 { _, hi := poissonCI(eff(j)); return hi / eff(j) })
	return Estimate{P: perYear(c.lossRate()), Lo: perYear(fast.lossRate()), Hi: perYear(slow.lossRate())}, nil
}

func total(xs []int) int {
	t := 0
	for _, x := range xs {
		t += x
	}
	return t
}
