// Command report turns the benchmark's raw figures (JSON lines written by
// scripts/bench.sh and rawclient) into markdown tables and a JSON summary.
//
//	report -in raw.jsonl -md results.md -json results.json [-title T]
//
// Each cell is the median of the runs, with the minimum and maximum. Ratios
// are performance ratios: above 1 means better than the reference (for
// times, the reference's time divided by this one).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"strings"
)

// record is one line of raw.jsonl: a figure, or the requests of a workload.
type record struct {
	Profile  string           `json:"profile"`
	FS       string           `json:"fs"`
	Workload string           `json:"workload"`
	Run      int              `json:"run"`
	Value    float64          `json:"value"`
	Unit     string           `json:"unit"`
	Error    string           `json:"error,omitempty"`
	Requests map[string]int64 `json:"requests,omitempty"`
}

// stat is the summary of one workload on one filesystem.
type stat struct {
	Median, Min, Max float64
	Runs             int
	Unit             string
	Error            string `json:",omitempty"`
}

func (s *stat) ok() bool { return s != nil && s.Runs > 0 }

type key struct{ profile, fs, workload string }

func main() {
	in := flag.String("in", "", "raw.jsonl")
	mdOut := flag.String("md", "", "markdown output (stdout when empty)")
	jsonOut := flag.String("json", "", "JSON summary output")
	title := flag.String("title", "", "heading line")
	flag.Parse()
	recs, err := load(*in)
	if err != nil {
		log.Fatalf("report: %v", err)
	}
	stats, reqs := summarize(recs)
	md := render(*title, stats, reqs)
	if *mdOut == "" {
		fmt.Print(md)
	} else if err := os.WriteFile(*mdOut, []byte(md), 0o644); err != nil {
		log.Fatal(err)
	}
	if *jsonOut != "" {
		out := map[string]map[string]map[string]*stat{}
		for k, s := range stats {
			if out[k.profile] == nil {
				out[k.profile] = map[string]map[string]*stat{}
			}
			if out[k.profile][k.workload] == nil {
				out[k.profile][k.workload] = map[string]*stat{}
			}
			out[k.profile][k.workload][k.fs] = s
		}
		b, _ := json.MarshalIndent(map[string]any{"summary": out, "records": recs}, "", " ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

func load(path string) ([]record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs []record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		recs = append(recs, r)
	}
	return recs, sc.Err()
}

func summarize(recs []record) (map[key]*stat, map[key]map[string]int64) {
	vals := map[key][]float64{}
	stats := map[key]*stat{}
	reqs := map[key]map[string]int64{}
	for _, r := range recs {
		k := key{r.Profile, r.FS, r.Workload}
		if r.Requests != nil {
			// The first run's requests stand for the workload.
			if _, seen := reqs[k]; !seen || r.Run == 1 {
				reqs[k] = r.Requests
			}
			continue
		}
		s := stats[k]
		if s == nil {
			s = &stat{Unit: r.Unit}
			stats[k] = s
		}
		if r.Error != "" {
			if s.Error == "" {
				s.Error = r.Error
			}
			continue
		}
		vals[k] = append(vals[k], r.Value)
	}
	for k, v := range vals {
		slices.Sort(v)
		s := stats[k]
		s.Runs, s.Min, s.Max = len(v), v[0], v[len(v)-1]
		if len(v)%2 == 1 {
			s.Median = v[len(v)/2]
		} else {
			s.Median = (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
	}
	return stats, reqs
}
