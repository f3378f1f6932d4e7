//go:build linux

package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// chart draws, as SVG, a horizontal bar per row of the ratio tables and
// per server of ours: its factor against the best peer, with a line at 1×
// where the two are equal.
func (r *report) chart() string {
	type bar struct {
		label   string
		factors []float64
	}
	var bars []bar
	top := 0.0
	for _, t := range r.tables {
		if !t.ratios {
			continue
		}
		for _, rw := range t.rows {
			b := bar{label: t.short + " · " + rw.label}
			for _, o := range r.ours {
				f := r.factor(rw, o)
				b.factors = append(b.factors, f)
				if !math.IsNaN(f) {
					top = max(top, f)
				}
			}
			bars = append(bars, b)
		}
	}
	// The scale runs to the next half above the largest factor, from 2×
	// to 4×; longer bars are cut at the edge, their value still written.
	scale := min(max(2, math.Ceil(top*2)/2), 4)

	const (
		width  = 960
		labelW = 390
		plotX  = labelW + 10
		plotW  = width - plotX - 70
		barH   = 14
		head   = 64
	)
	rowH := 8 + barH*len(r.ours)
	height := head + rowH*len(bars) + 40
	x := func(f float64) float64 { return plotX + plotW*min(f, scale)/scale }
	colors := []string{"#1f5fa8", "#7fb0e0", "#e08a2f"}

	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&s, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&s, `<text x="10" y="20" font-size="15" font-weight="bold">Ours against the best other library, per row (right of 1×: ours is better)</text>`+"\n")
	fmt.Fprintf(&s, `<text x="10" y="38" fill="#444">throughput: ours ÷ best; CPU, latency, memory: best ÷ ours. %s</text>`+"\n", html.EscapeString(r.cfg.shortSetup()))
	for i, o := range r.ours {
		lx := plotX + 150*i
		fmt.Fprintf(&s, `<rect x="%d" y="46" width="12" height="12" fill="%s"/><text x="%d" y="56">%s</text>`+"\n", lx, colors[i%len(colors)], lx+16, html.EscapeString(o))
	}
	// Grid every half, the 1× line darker.
	for g := 0.5; g <= scale+1e-9; g += 0.5 {
		stroke, w := "#ddd", 1
		if g == 1 {
			stroke, w = "#333", 2
		}
		fmt.Fprintf(&s, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="%d"/>`+"\n", x(g), head, x(g), head+rowH*len(bars), stroke, w)
		fmt.Fprintf(&s, `<text x="%.1f" y="%d" text-anchor="middle" fill="#444">%g×</text>`+"\n", x(g), head+rowH*len(bars)+16, g)
	}
	for i, b := range bars {
		y := head + rowH*i
		if i%2 == 1 {
			fmt.Fprintf(&s, `<rect x="0" y="%d" width="%d" height="%d" fill="#000" fill-opacity="0.03"/>`+"\n", y, width, rowH)
		}
		fmt.Fprintf(&s, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW, y+rowH/2+4, html.EscapeString(b.label))
		for j, f := range b.factors {
			by := y + 4 + barH*j
			if math.IsNaN(f) {
				fmt.Fprintf(&s, `<text x="%d" y="%d" fill="#888">n/a</text>`+"\n", plotX+4, by+barH-3)
				continue
			}
			fmt.Fprintf(&s, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", plotX, by, x(f)-plotX, barH-2, colors[j%len(colors)])
			fmt.Fprintf(&s, `<text x="%.1f" y="%d" stroke="white" stroke-width="3" paint-order="stroke">%.2f×</text>`+"\n", x(f)+4, by+barH-3, f)
		}
	}
	s.WriteString("</svg>\n")
	return s.String()
}

// shortSetup says in a few words how the numbers were made.
func (c config) shortSetup() string {
	return fmt.Sprintf("Medians of %d round(s) of %v.", c.rounds, c.duration)
}
