package main

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Grafana's value formats (packages/grafana-data/src/valueFormats) for the
// units the dashboards use. decimals < 0 means Grafana's automatic
// decimals for the value.

type formatter func(v float64, decimals int) string

var units = map[string]formatter{
	"":            fixedUnit(""),
	"none":        fixedUnit(""),
	"short":       scaled(1000, "", " K", " Mil", " Bil", " Tri", " Quadr", " Quint", " Sext", " Sept"),
	"percent":     fixedUnit("%"),
	"percentunit": func(v float64, d int) string { return toFixed(v*100, d) + "%" },
	"bytes":       scaled(1024, " B", " KiB", " MiB", " GiB", " TiB", " PiB", " EiB"),
	"decbytes":    scaled(1000, " B", " kB", " MB", " GB", " TB", " PB", " EB"),
	"Bps":         scaled(1024, " B/s", " KiB/s", " MiB/s", " GiB/s", " TiB/s", " PiB/s"),
	"binBps":      scaled(1024, " B/s", " KiB/s", " MiB/s", " GiB/s", " TiB/s", " PiB/s"),
	"decBps":      scaled(1000, " B/s", " kB/s", " MB/s", " GB/s", " TB/s", " PB/s"),
	"ops":         countUnit("ops/s"),
	"reqps":       countUnit("req/s"),
	"rps":         countUnit("rd/s"),
	"wps":         countUnit("wr/s"),
	"iops":        countUnit("io/s"),
	"cps":         countUnit("c/s"),
	"s":           toSeconds,
	"ms":          func(v float64, d int) string { return toSeconds(v/1000, d) },
}

// format formats v in unit, or says the renderer lacks the unit.
func format(unit string, v float64, decimals int) (string, error) {
	f, ok := units[unit]
	if !ok {
		return "", fmt.Errorf("unit %q is not one the renderer formats (add it to units.go)", unit)
	}
	return f(v, decimals), nil
}

func fixedUnit(suffix string) formatter {
	return func(v float64, d int) string { return toFixed(v, d) + suffix }
}

// scaled is Grafana's scaledUnits: divide by factor until below it.
func scaled(factor float64, suffixes ...string) formatter {
	return func(v float64, d int) string {
		step := 0
		for math.Abs(v) >= factor {
			step++
			v /= factor
			if step >= len(suffixes) {
				return "NA"
			}
		}
		return toFixed(v, d) + suffixes[step]
	}
}

// countUnit is Grafana's simpleCountUnit: 1.50K req/s.
func countUnit(symbol string) formatter {
	s := scaled(1000, "", "K", "M", "B", "T")
	return func(v float64, d int) string { return s(v, d) + " " + symbol }
}

// toSeconds is Grafana's "s" unit.
func toSeconds(v float64, d int) string {
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0 s"
	case a < 1e-6:
		return toFixedScaled(v*1e9, d, " ns")
	case a < 1e-3:
		return toFixedScaled(v*1e6, d, " µs")
	case a < 1:
		return toFixedScaled(v*1e3, d, " ms")
	case a < 60:
		return toFixed(v, d) + " s"
	case a < 3600:
		return toFixedScaled(v/60, d, " min")
	case a < 86400:
		return toFixedScaled(v/3600, d, " hour")
	case a < 604800:
		return toFixedScaled(v/86400, d, " day")
	case a < 31536000:
		return toFixedScaled(v/604800, d, " week")
	}
	return toFixedScaled(v/3.15569e7, d, " year")
}

func toFixedScaled(v float64, d int, suffix string) string { return toFixed(v, d) + suffix }

// toFixed is Grafana's toFixed: automatic decimals when d < 0, and
// trailing zeros up to d.
func toFixed(v float64, d int) string {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	if d < 0 {
		d = decimalsFor(v)
	}
	if v == 0 {
		return "0"
	}
	factor := math.Pow(10, float64(d))
	r := math.Round(v*factor) / factor
	s := strconv.FormatFloat(r, 'f', -1, 64)
	prec := 0
	if i := strings.IndexByte(s, '.'); i >= 0 {
		prec = len(s) - i - 1
	}
	if prec < d {
		if prec == 0 {
			s += "."
		}
		s += strings.Repeat("0", d-prec)
	}
	return s
}

// decimalsFor is Grafana's getDecimalsForValue.
func decimalsFor(v float64) int {
	a := math.Abs(v)
	if a == 0 {
		return 0
	}
	log10 := math.Floor(math.Log10(a))
	dec := -log10 + 1
	magn := math.Pow(10, -dec)
	if a/magn > 2.25 {
		dec++
	}
	if math.Mod(v, 1) == 0 {
		dec = 0
	}
	return int(math.Max(0, dec))
}

// axisLabels formats each tick of an axis with the fewest decimals that
// show it exactly (0.5, 1, 1.5 rather than 1, 1, 2).
func axisLabels(unit string, ticks []float64) ([]string, error) {
	if _, err := format(unit, 0, 0); err != nil {
		return nil, err
	}
	labels := make([]string, len(ticks))
	for i, t := range ticks {
		exact, _ := format(unit, t, 6)
		want := leadingNumber(exact)
		for d := 0; d <= 6; d++ {
			l, _ := format(unit, t, d)
			if d == 6 || math.Abs(leadingNumber(l)-want) <= 1e-9*math.Max(1, math.Abs(want)) {
				labels[i] = l
				break
			}
		}
	}
	return labels, nil
}

var numberPrefix = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?`)

// leadingNumber is the number a formatted value starts with.
func leadingNumber(s string) float64 {
	f, _ := strconv.ParseFloat(numberPrefix.FindString(s), 64)
	return f
}
