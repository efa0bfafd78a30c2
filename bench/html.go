package bench

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// WriteHTML writes a self-contained HTML report of results: a latency by
// percentile plot with one line per result (so a run through the proxy and
// one straight to the backend share the plot), and the table WriteTable
// writes. The plot is inline SVG, drawn here: the page loads nothing else.
// Its x axis is the percentile on the log scale of 1/(1-p) that
// HdrHistogram plots use (0 to 99.99%), its y axis the latency.
func WriteHTML(w io.Writer, title string, results ...*Result) error {
	var table bytes.Buffer
	if err := WriteTable(&table, results...); err != nil {
		return err
	}
	page := htmlPage{Title: title, Plot: newPlot(results), Table: table.String(), Generated: time.Now().UTC().Format(time.RFC3339)}
	for _, r := range results {
		page.Runs = append(page.Runs, fmt.Sprintf("%s: %s %s, %s, %s %s%s, %d-byte body, measured %s from %s",
			r.Label, r.Scenario, r.Loop+" loop", loadText(r), r.Method, r.URL, pathSuffix(r), r.BodyBytes, fmtSeconds(r.Duration), r.Start.UTC().Format(time.RFC3339)))
	}
	return htmlTemplate.Execute(w, page)
}

func pathSuffix(r *Result) string {
	if strings.HasSuffix(r.URL, r.Path) {
		return ""
	}
	return " (path " + r.Path + ")"
}

type htmlPage struct {
	Title, Table, Generated string
	Runs                    []string
	Plot                    plot
}

// plot is an SVG latency-by-percentile chart. Coordinates are SVG user
// units, rounded to a tenth.
type plot struct {
	Width, Height       int
	Left, Right         float64 // the plot area's x range
	Top, Bottom         float64 // the plot area's y range
	YLabelX, XLabelY    float64 // where tick labels go
	TitleX, TitleY      float64 // the x axis title
	KeyX1, KeyX2, KeyTX float64 // the legend's line and text
	XTicks, YTicks      []tick
	Series              []series
}

type tick struct {
	Pos, LabelPos float64 // x (XTicks) or y (YTicks)
	Label         string
}

type series struct {
	Label, Color, D string // D is the path data
	KeyY, KeyTY     float64
}

// palette is colour-blind safe (Okabe and Ito).
var palette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"}

// maxNines is how far right the x axis goes: 4 nines, 99.99%.
const maxNines = 4

func newPlot(results []*Result) plot {
	const left, top, right, bottom = 80, 20, 30, 60 // margins
	p := plot{Width: 860, Height: 440, Left: left, Top: top}
	p.Right, p.Bottom = float64(p.Width-right), float64(p.Height-bottom)
	w, h := p.Right-p.Left, p.Bottom-p.Top
	p.YLabelX, p.XLabelY = p.Left-8, p.Bottom+18
	p.TitleX, p.TitleY = round1(p.Left+w/2), p.Bottom+42
	p.KeyX1, p.KeyX2, p.KeyTX = p.Left+16, p.Left+40, p.Left+46

	var highest time.Duration
	for _, r := range results {
		for _, pt := range r.Percentiles {
			highest = max(highest, pt.Latency)
		}
	}
	yMax := niceCeil(float64(highest) / 1e6) // ms
	x := func(pct float64) float64 {
		nines := math.Log10(1 / (1 - min(pct, 99.99)/100))
		return round1(p.Left + w*min(nines, maxNines)/maxNines)
	}
	y := func(ms float64) float64 { return round1(p.Top + h*(1-ms/yMax)) }
	for i, l := range []string{"0%", "90%", "99%", "99.9%", "99.99%"} {
		pos := round1(p.Left + w*float64(i)/maxNines)
		p.XTicks = append(p.XTicks, tick{Pos: pos, LabelPos: pos, Label: l})
	}
	for i := 0; i <= 5; i++ {
		ms := yMax * float64(i) / 5
		p.YTicks = append(p.YTicks, tick{Pos: y(ms), LabelPos: y(ms) + 4, Label: strconv.FormatFloat(ms, 'g', 4, 64) + " ms"})
	}
	for i, r := range results {
		var d strings.Builder
		for j, pt := range r.Percentiles {
			cmd := " L"
			if j == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&d, "%s%.1f,%.1f", cmd, x(pt.Percentile), y(float64(pt.Latency)/1e6))
		}
		keyY := p.Top + 18 + 20*float64(i)
		p.Series = append(p.Series, series{
			Label: fmt.Sprintf("%s (%s, p99 %s)", r.Label, r.Scenario, fmtLatency(r.Latency.P99)),
			Color: palette[i%len(palette)],
			D:     d.String(),
			KeyY:  keyY, KeyTY: keyY + 4,
		})
	}
	return p
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// niceCeil returns the smallest of 1, 2, 2.5 or 5 times a power of ten
// that is at least v (and 1 for v <= 0).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*e >= v*(1-1e-9) {
			return m * e
		}
	}
	return 10 * e
}

var htmlTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
svg text { font-size: 12px; fill: #333; }
.grid { stroke: #ddd; stroke-width: 1; }
.axis { stroke: #333; stroke-width: 1; }
.series { fill: none; stroke-width: 2; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p>Generated {{.Generated}} by scoregate bench.</p>
<ul>
{{- range .Runs}}
<li>{{.}}</li>
{{- end}}
</ul>
<h2>Latency by percentile</h2>
{{with .Plot -}}
<svg xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="latency by percentile">
{{- $p := .}}
{{- range .YTicks}}
<line class="grid" x1="{{$p.Left}}" x2="{{$p.Right}}" y1="{{.Pos}}" y2="{{.Pos}}"/>
<text x="{{$p.YLabelX}}" y="{{.LabelPos}}" text-anchor="end">{{.Label}}</text>
{{- end}}
{{- range .XTicks}}
<line class="grid" x1="{{.Pos}}" x2="{{.Pos}}" y1="{{$p.Top}}" y2="{{$p.Bottom}}"/>
<text x="{{.LabelPos}}" y="{{$p.XLabelY}}" text-anchor="middle">{{.Label}}</text>
{{- end}}
<line class="axis" x1="{{.Left}}" x2="{{.Left}}" y1="{{.Top}}" y2="{{.Bottom}}"/>
<line class="axis" x1="{{.Left}}" x2="{{.Right}}" y1="{{.Bottom}}" y2="{{.Bottom}}"/>
<text x="{{.TitleX}}" y="{{.TitleY}}" text-anchor="middle">percentile (log scale of 1/(1-p))</text>
{{- range .Series}}
<path class="series" fill="none" stroke="{{.Color}}" d="{{.D}}"><title>{{.Label}}</title></path>
<line x1="{{$p.KeyX1}}" x2="{{$p.KeyX2}}" y1="{{.KeyY}}" y2="{{.KeyY}}" stroke="{{.Color}}" stroke-width="3"/>
<text x="{{$p.KeyTX}}" y="{{.KeyTY}}">{{.Label}}</text>
{{- end}}
</svg>
{{- end}}
<h2>Figures</h2>
<pre>{{.Table}}</pre>
</body>
</html>
`))
