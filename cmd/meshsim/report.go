package main

import (
	"fmt"
	"io"
	"math"
	"slices"
)

// writeReport prints the assumptions and one table row per result.
func writeReport(w io.Writer, o *options, rs []*Result) {
	c := o.base
	fmt.Fprintf(w, "Assumptions: node AFR %.2f%%/yr (%s lifetimes), %.3g outages/node/yr of mean %s, detection after %s, "+
		"dead nodes replaced after %s, repair %s/s per node, %s per node, repair when fewer than %s shards stored, "+
		"most endangered first.",
		c.AFR*100, lifetimes(c), c.Outages, fmtDur(c.OutageMean), fmtDur(c.Detect), fmtDur(c.Replace),
		fmtBytes(c.Bandwidth), fmtBytes(c.NodeData), below(c))
	if c.Zones > 0 {
		fmt.Fprintf(w, " %d zones, zone losses %.3g%%/zone/yr, zone outages %.3g/zone/yr of mean %s.",
			c.Zones, c.ZoneAFR*100, c.ZoneOutages, fmtDur(c.ZoneOutMean))
	}
	if c.RepairDist != "" {
		fmt.Fprintf(w, " Repair time %s with mean %s instead of the bandwidth model.", c.RepairDist, fmtDur(c.RepairMean))
	}
	spn := "the grid's size in [100, 1000]"
	if c.ShardsPerNode > 0 {
		spn = fmt.Sprint(c.ShardsPerNode)
	}
	yrs := fmt.Sprintf("%.3g years per row / (nodes × max(nodes, shards per node)), at least one", o.work)
	if o.years > 0 {
		yrs = fmt.Sprintf("%.3g years per row", o.years)
	}
	fmt.Fprintf(w, " Simulated: shards per node %s, %s, seed %d.\n\n", spn, yrs, c.Seed)
	fmt.Fprintln(w, "| nodes | k+m | P(loss)/segment/yr [95%] | direct: losses / segment-yrs | bytes lost/yr | repair/yr total | per node (max) | degraded | restore mean (p99) |")
	fmt.Fprintln(w, "|---:|---:|---|---|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		chain := "n/a (no repairs seen)"
		if e, err := r.Chain(); err == nil {
			chain = fmt.Sprintf("%s [%s, %s]", fmtP(e.P), fmtP(e.Lo), fmtP(e.Hi))
			lost := e.P * float64(r.Nodes) * r.NodeData * float64(r.K) / float64(r.K+r.M)
			chain += " | " + directCell(r) + " | " + fmtBytes(lost)
		} else {
			chain += " | " + directCell(r) + " | n/a"
		}
		total := r.RepairBytes / r.Years
		var sum, mx float64
		for _, b := range r.NodeBytes {
			sum += b
			mx = max(mx, b)
		}
		fmt.Fprintf(w, "| %d | %d+%d | %s | %s | %s (%s) | %.2g%% | %s (%s) |\n",
			r.Nodes, r.K, r.M, chain, fmtBytes(total), fmtBytes(sum/r.NodeYears), fmtBytes(mx/r.Years),
			100*r.Degraded/(float64(r.Segments)*r.Years*year), fmtDur(mean(r.RestoreTime)), fmtDur(pct(r.RestoreTime, 0.99)))
	}
}

func directCell(r *Result) string {
	d := r.Direct()
	if r.Losses == 0 {
		return fmt.Sprintf("0 / %.3g (< %s)", r.SegYears, fmtP(d.Hi))
	}
	return fmt.Sprintf("%d / %.3g (%s)", r.Losses, r.SegYears, fmtP(d.P))
}

func lifetimes(c Config) string {
	if c.WeibullShape > 0 && c.WeibullShape != 1 {
		return fmt.Sprintf("Weibull shape %.2g", c.WeibullShape)
	}
	return "exponential"
}

func below(c Config) string {
	if c.Policy.Below <= 0 {
		return "k+m"
	}
	return fmt.Sprint(c.Policy.Below)
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func fmtP(p float64) string {
	switch {
	case p == 0:
		return "0"
	case p < 1e-300:
		return "<1e-300"
	}
	return fmt.Sprintf("%.2g", p)
}

func fmtBytes(b float64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	i := 0
	for math.Abs(b) >= 1000 && i < len(units)-1 {
		b /= 1000
		i++
	}
	switch {
	case b == 0:
		return "0 B"
	case math.Abs(b) < 0.01:
		return fmt.Sprintf("%.2g %s", b, units[i])
	}
	return fmt.Sprintf("%.3g %s", b, units[i])
}

func fmtDur(sec float64) string {
	switch {
	case sec == 0:
		return "0"
	case sec < 60:
		return fmt.Sprintf("%.3gs", sec)
	case sec < 3600:
		return fmt.Sprintf("%.3gm", sec/60)
	case sec < 2*86400:
		return fmt.Sprintf("%.3gh", sec/3600)
	case sec < year:
		return fmt.Sprintf("%.3gd", sec/86400)
	}
	return fmt.Sprintf("%.3gy", sec/year)
}
