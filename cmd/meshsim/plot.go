package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
)

// writePlot draws P(loss)/yr against repair bandwidth on log-log axes, one
// line per grid size, the chain's interval as a bar at each point, and
// writes it to path as a PNG. rs holds, per grid size in o.plotNodes, one
// result per bandwidth in o.plotBW.
func writePlot(path string, o *options, rs []*Result) error {
	const (
		w, h                     = 900, 560
		left, right, top, bottom = 110, 190, 60, 80
		scale                    = 2
	)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	black := color.RGBA{0, 0, 0, 255}
	grey := color.RGBA{220, 220, 220, 255}
	palette := []color.RGBA{{31, 119, 180, 255}, {214, 39, 40, 255}, {44, 160, 44, 255}, {148, 103, 189, 255}, {255, 127, 14, 255}, {23, 190, 207, 255}}

	type point struct{ x, p, lo, hi float64 }
	lines := make([][]point, len(o.plotNodes))
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for i, r := range rs {
		e, err := r.Chain()
		if err != nil || e.P <= 0 {
			continue
		}
		li := i / len(o.plotBW)
		lines[li] = append(lines[li], point{r.Bandwidth / 1e6, e.P, max(e.Lo, 1e-300), e.Hi})
		ymin, ymax = min(ymin, e.Lo), max(ymax, e.Hi)
	}
	if math.IsInf(ymin, 1) {
		return fmt.Errorf("no point to plot: no run saw a repair")
	}
	ylo, yhi := math.Floor(math.Log10(max(ymin, 1e-300))), math.Ceil(math.Log10(ymax))
	if yhi <= ylo {
		yhi = ylo + 1
	}
	xlo, xhi := math.Log10(o.plotBW[0]/1e6), math.Log10(o.plotBW[0]/1e6)
	for _, b := range o.plotBW {
		xlo, xhi = min(xlo, math.Log10(b/1e6)), max(xhi, math.Log10(b/1e6))
	}
	if xhi <= xlo {
		xlo, xhi = xlo-0.5, xhi+0.5
	}
	px := func(mbps float64) int {
		return left + int(math.Round((math.Log10(mbps)-xlo)/(xhi-xlo)*float64(w-left-right)))
	}
	py := func(p float64) int {
		return top + int(math.Round((yhi-math.Log10(p))/(yhi-ylo)*float64(h-top-bottom)))
	}

	// Grid and ticks: a line per decade of P (labelled every few when
	// there are many), a line per bandwidth.
	step := math.Max(1, math.Ceil((yhi-ylo)/10))
	for d := ylo; d <= yhi; d++ {
		y := py(math.Pow(10, d))
		line(img, left, y, w-right, y, grey, 1)
		if math.Mod(d-ylo, step) == 0 {
			s := fmt.Sprintf("1e%d", int(d))
			drawText(img, left-10-textWidth(s, scale), y-7, s, scale, black, false)
		}
	}
	for _, b := range o.plotBW {
		x := px(b / 1e6)
		line(img, x, top, x, h-bottom, grey, 1)
		s := fmt.Sprintf("%g", b/1e6)
		drawText(img, x-textWidth(s, scale)/2, h-bottom+10, s, scale, black, false)
	}
	line(img, left, top, left, h-bottom, black, 1)
	line(img, left, h-bottom, w-right, h-bottom, black, 1)

	c := o.base
	title := fmt.Sprintf("P(loss) per segment-year, k=%d m=%d, AFR %.3g%%", o.km[0][0], o.km[0][1], c.AFR*100)
	drawText(img, left, 20, title, scale, black, false)
	xl := "repair bandwidth per node (MB/s)"
	drawText(img, left+(w-left-right-textWidth(xl, scale))/2, h-bottom+40, xl, scale, black, false)
	yl := "P(loss) / segment / year"
	drawText(img, 14, top+(h-top-bottom+textWidth(yl, scale))/2, yl, scale, black, true)

	for i, pts := range lines {
		col := palette[i%len(palette)]
		for j, p := range pts {
			x := px(p.x)
			line(img, x, py(p.lo), x, py(p.hi), col, 1)
			line(img, x-4, py(p.lo), x+4, py(p.lo), col, 1)
			line(img, x-4, py(p.hi), x+4, py(p.hi), col, 1)
			mark(img, x, py(p.p), col)
			if j > 0 {
				line(img, px(pts[j-1].x), py(pts[j-1].p), x, py(p.p), col, 2)
			}
		}
		ly := top + 10 + i*26
		line(img, w-right+15, ly+7, w-right+45, ly+7, col, 2)
		drawText(img, w-right+52, ly, fmt.Sprintf("%d nodes", o.plotNodes[i]), scale, black, false)
	}

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// line draws from (x0, y0) to (x1, y1), width pixels thick (Bresenham).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color, width int) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	e := dx + dy
	for {
		for a := range width {
			for b := range width {
				img.Set(x0+a, y0+b, c)
			}
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func mark(img *image.RGBA, x, y int, c color.Color) {
	for a := -3; a <= 3; a++ {
		for b := -3; b <= 3; b++ {
			img.Set(x+a, y+b, c)
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
