package main

import (
	"context"
	"math"
	"testing"
)

// formulaConfig is a grid where one segment's life is a birth-death chain
// with a closed form: independent exponential node deaths, dead nodes
// replaced at once, no outages, no detection delay, and repairs that take
// an exponential (or fixed) time and rebuild every shard missing when they
// end. Many nodes and few shards per node keep segments nearly
// independent, so the Poisson interval on the count of losses holds.
func formulaConfig(k, m int, dist string, repairYears float64) Config {
	return Config{Nodes: 400, K: k, M: m, AFR: 1, Detect: 0, Replace: 0,
		RepairDist: dist, RepairMean: repairYears * year,
		NodeData: 1e12, ShardsPerNode: 3, Bandwidth: 1, Years: 12, Seed: 7}
}

// expRepairRate is the closed form for exponential repairs of rate mu:
// from j lost shards (1 <= j <= m), a death (rate (n-j)λ) takes it one
// deeper, a repair (rate mu) back to 0. h_1 = P(loss before repair | 1) =
// Π f_j/(f_j+mu); the mean cycle from 0 is 1/(nλ) + Σ_j P(reach j)/(f_j+mu);
// the loss rate is h_1 over the cycle (renewal).
func expRepairRate(n, m int, lambda, mu float64) float64 {
	reach, cycle := 1.0, 1/(float64(n)*lambda)
	for j := 1; j <= m; j++ {
		f := float64(n-j) * lambda
		cycle += reach / (f + mu)
		reach *= f / (f + mu)
	}
	return reach / cycle
}

// fixedRepairRate is the closed form for m = 1 and repairs that take
// exactly T: a second death within T loses the segment.
func fixedRepairRate(n int, lambda, T float64) float64 {
	f := float64(n-1) * lambda
	p := -math.Expm1(-f * T)
	return p / (1/(float64(n)*lambda) + p/f)
}

func TestSimulatorAgreesWithClosedForm(t *testing.T) {
	cases := []struct {
		name    string
		c       Config
		formula float64 // loss rate per segment-year
	}{
		{"k=2 m=2 exponential repair", formulaConfig(2, 2, "exp", 0.1), expRepairRate(4, 2, 1, 10)},
		{"k=3 m=1 fixed repair", formulaConfig(3, 1, "fixed", 0.05), fixedRepairRate(4, 1, 0.05)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Run(context.Background(), tc.c)
			if err != nil {
				t.Fatal(err)
			}
			want := perYear(tc.formula)
			d := res.Direct()
			t.Logf("formula %.4g, simulated %.4g [%.4g, %.4g] from %d losses in %.0f segment-years",
				want, d.P, d.Lo, d.Hi, res.Losses, res.SegYears)
			if res.Losses < 200 {
				t.Fatalf("only %d losses: the case no longer tests anything", res.Losses)
			}
			if want < d.Lo || want > d.Hi {
				t.Errorf("closed form %.4g is outside the simulation's interval [%.4g, %.4g]", want, d.Lo, d.Hi)
			}
			if tc.c.RepairDist != "exp" {
				return
			}
			// The fitted chain is exact for exponential repairs.
			ch, err := res.Chain()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("fitted chain %.4g [%.4g, %.4g]", ch.P, ch.Lo, ch.Hi)
			if want < ch.Lo || want > ch.Hi {
				t.Errorf("closed form %.4g is outside the fitted chain's interval [%.4g, %.4g]", want, ch.Lo, ch.Hi)
			}
		})
	}
}

// TestChainRareEvents: the chain solver keeps its digits where the loss
// probability is far below anything a simulation could count.
func TestChainRareEvents(t *testing.T) {
	for _, tc := range []struct {
		n, m      int
		lambda, u float64
	}{{6, 2, 0.017, 365}, {14, 4, 0.017, 3000}, {3, 1, 0.5, 2}} {
		c := newChain(tc.m)
		for j := 0; j <= tc.m; j++ {
			c.rate[j][j+1] = float64(tc.n-j) * tc.lambda
			if j > 0 {
				c.rate[j][0] = tc.u
			}
		}
		got, want := c.lossRate(), expRepairRate(tc.n, tc.m, tc.lambda, tc.u)
		if math.Abs(got-want) > 1e-9*want {
			t.Errorf("n=%d m=%d: chain %.6g, closed form %.6g", tc.n, tc.m, got, want)
		}
	}
}

// TestRepairsAreNeeded: with no repair the loss rate is that of n
// independent lifetimes, far above the repaired grid's, so the test above
// can tell a simulator that repairs from one that does not.
func TestRepairsAreNeeded(t *testing.T) {
	c := formulaConfig(2, 2, "exp", 0.1)
	c.RepairMean = 1e6 * year
	c.Years = 2
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	repaired := perYear(expRepairRate(4, 2, 1, 10))
	if d := res.Direct(); d.Lo < 2*repaired {
		t.Fatalf("without repair %.3g [%.3g, %.3g]: not clearly above %.3g", d.P, d.Lo, d.Hi, repaired)
	}
}

// TestZoneSimulation: zone losses run through the simulator, and the
// chain's loss probability with them is far above the one without.
func TestZoneSimulation(t *testing.T) {
	c := Config{Nodes: 20, Zones: 4, K: 6, M: 3, AFR: 0.017, Outages: 4, OutageMean: 390, Detect: 900,
		Replace: 3 * 86400, Bandwidth: 20e6, NodeData: 4e12, ShardsPerNode: 20, Years: 200, Seed: 3}
	quiet, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	c.ZoneAFR = 0.01
	zoned, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	q, err1 := quiet.Chain()
	z, err2 := zoned.Chain()
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	t.Logf("without zone losses %.3g, with %.3g (%d nodes died with their zone)", q.P, z.P, zoned.ZoneDeaths)
	if zoned.ZoneDeaths == 0 || z.Lo < 100*q.Hi {
		t.Fatalf("zone losses: %d nodes died with their zone, P %.3g against %.3g without", zoned.ZoneDeaths, z.P, q.P)
	}
}
