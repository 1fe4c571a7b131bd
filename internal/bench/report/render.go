package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

func render(title string, stats map[key]*stat, reqs map[key]map[string]int64) string {
	var b strings.Builder
	if title != "" {
		fmt.Fprintf(&b, "%s\n\n", title)
	}
	profiles := map[string]bool{}
	for k := range stats {
		profiles[k.profile] = true
	}
	var order []string
	for _, p := range []string{"local", "region"} {
		if profiles[p] {
			order = append(order, p)
		}
	}
	for p := range profiles {
		if p != "local" && p != "region" {
			order = append(order, p)
		}
	}
	for _, p := range order {
		renderProfile(&b, p, stats, reqs)
	}
	return b.String()
}

// get finds a figure; the FUSE ceiling does not depend on the network, so
// the region profile borrows the local one when it was not measured again.
func get(stats map[key]*stat, profile, fs, w string) *stat {
	if s := stats[key{profile, fs, w}]; s != nil {
		return s
	}
	if fs == "fuse" {
		return stats[key{"local", fs, w}]
	}
	return nil
}

func renderProfile(b *strings.Builder, p string, stats map[key]*stat, reqs map[key]map[string]int64) {
	fmt.Fprintf(b, "### Profile `%s`\n\n", p)

	// Figures.
	fmt.Fprintf(b, "Median of the runs, (min–max) below it. Cold = page cache dropped and a fresh mount.\n\n")
	fmt.Fprintf(b, "| workload | unit | FUSE ceiling | raw client |")
	for _, f := range filesystems {
		fmt.Fprintf(b, " %s |", f.label)
	}
	fmt.Fprintf(b, "\n|---|---|---:|---:|")
	for range filesystems {
		fmt.Fprintf(b, "---:|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		if !anyFigure(stats, p, r) {
			continue
		}
		unit := unitOf(stats, p, r)
		fmt.Fprintf(b, "| %s | %s | %s | %s |", r.label, unit, cell(get(stats, p, "fuse", r.fuse), r.fuse != ""), cell(get(stats, p, "raw", r.raw), r.raw != ""))
		for _, f := range filesystems {
			fmt.Fprintf(b, " %s |", cell(get(stats, p, f.id, r.id), true))
		}
		b.WriteString("\n")
	}

	// Ratios.
	fmt.Fprintf(b, "\nRatios of performance (above 1 = better; for times, the other's time ÷ this one): "+
		"`×cos` against cosmount, `×ceil` against the ceiling (the lower of the FUSE ceiling and the raw client where both apply).\n\n")
	fmt.Fprintf(b, "| workload |")
	for _, f := range filesystems {
		fmt.Fprintf(b, " %s |", f.label)
	}
	fmt.Fprintf(b, "\n|---|")
	for range filesystems {
		fmt.Fprintf(b, "---:|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		if !anyFigure(stats, p, r) || strings.HasPrefix(r.id, "rss-") || r.id == "cache-disk" || r.id == "rsync2-files" || r.id == "rsync1-left" {
			continue
		}
		ceil := ceilingOf(stats, p, r)
		cos := get(stats, p, "cosmount", r.id)
		fmt.Fprintf(b, "| %s |", r.label)
		for _, f := range filesystems {
			s := get(stats, p, f.id, r.id)
			var parts []string
			if f.id != "cosmount" && s.ok() && cos.ok() {
				parts = append(parts, ratio(s.Median, cos.Median, r.lowerBetter)+" cos")
			}
			if s.ok() && ceil.ok() {
				parts = append(parts, ratio(s.Median, ceil.Median, r.lowerBetter)+" ceil")
			}
			if len(parts) == 0 {
				parts = []string{"—"}
			}
			fmt.Fprintf(b, " %s |", strings.Join(parts, " · "))
		}
		b.WriteString("\n")
	}

	// Ceilings.
	fmt.Fprintf(b, "\nRaw client (cosmount's transport, no file system):\n\n| measurement | unit | median (min–max) |\n|---|---|---:|\n")
	for _, r := range rawRows {
		if s := stats[key{p, "raw", r.id}]; s != nil {
			fmt.Fprintf(b, "| %s | %s | %s |\n", r.label, s.Unit, cell(s, true))
		}
	}

	// Requests.
	fmt.Fprintf(b, "\nHTTP requests of the first run of each workload, counted at the proxy:\n\n| workload |")
	for _, f := range filesystems {
		fmt.Fprintf(b, " %s |", f.label)
	}
	fmt.Fprintf(b, "\n|---|")
	for range filesystems {
		fmt.Fprintf(b, "---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		have := false
		for _, f := range filesystems {
			if reqs[key{p, f.id, r.id}] != nil {
				have = true
			}
		}
		if !have {
			continue
		}
		fmt.Fprintf(b, "| %s |", r.label)
		for _, f := range filesystems {
			fmt.Fprintf(b, " %s |", reqCell(reqs[key{p, f.id, r.id}]))
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

func anyFigure(stats map[key]*stat, p string, r row) bool {
	for _, f := range filesystems {
		if stats[key{p, f.id, r.id}] != nil {
			return true
		}
	}
	return false
}

func unitOf(stats map[key]*stat, p string, r row) string {
	for _, f := range filesystems {
		if s := stats[key{p, f.id, r.id}]; s != nil && s.Unit != "" {
			return s.Unit
		}
	}
	return ""
}

// ceilingOf is the lower-performing of the row's FUSE and raw ceilings.
func ceilingOf(stats map[key]*stat, p string, r row) *stat {
	var cands []*stat
	if r.fuse != "" {
		cands = append(cands, get(stats, p, "fuse", r.fuse))
	}
	if r.raw != "" {
		cands = append(cands, get(stats, p, "raw", r.raw))
	}
	var best *stat
	for _, c := range cands {
		if !c.ok() {
			continue
		}
		if best == nil || worse(c.Median, best.Median, r.lowerBetter) {
			best = c
		}
	}
	return best
}

func worse(a, b float64, lowerBetter bool) bool {
	if lowerBetter {
		return a > b
	}
	return a < b
}

func ratio(v, ref float64, lowerBetter bool) string {
	if v == 0 || ref == 0 {
		return "—"
	}
	r := v / ref
	if lowerBetter {
		r = ref / v
	}
	return fmt.Sprintf("%s×", num(r))
}

func cell(s *stat, applies bool) string {
	switch {
	case !applies:
		return ""
	case s == nil:
		return "—"
	case !s.ok():
		return "n/a: " + shortErr(s.Error)
	case s.Runs == 1 || s.Min == s.Max:
		return num(s.Median)
	}
	return fmt.Sprintf("%s<br>(%s–%s)", num(s.Median), num(s.Min), num(s.Max))
}

func shortErr(e string) string {
	e = strings.Join(strings.Fields(strings.ReplaceAll(e, "|", "/")), " ")
	if len(e) > 60 {
		e = e[:57] + "..."
	}
	return e
}

// num prints three significant digits, without exponent.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	case a >= 0.01:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.2g", v)
}

func reqCell(m map[string]int64) string {
	if m == nil {
		return "—"
	}
	type kv struct {
		k string
		v int64
	}
	var l []kv
	for k, v := range m {
		l = append(l, kv{k, v})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].v > l[j].v || l[i].v == l[j].v && l[i].k < l[j].k })
	var parts []string
	for _, e := range l {
		parts = append(parts, fmt.Sprintf("%s %d", e.k, e.v))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " · ")
}
