// Command probe holds the small measurements scripts/bench.sh cannot make
// well in bash:
//
//	probe first-read FILE          ms to open FILE and read 4 KiB from its middle
//	probe fio FILE.json            "MB/s IOPS p99-ms" of a fio JSON report's reads
//	probe fio-write FILE.json      "MB/s IOPS p99-ms" of its writes
//	probe sample PID DIR OUT       until SIGTERM: peak bytes of DIR plus the
//	                               deleted files PID holds open (its cache on
//	                               disk) and peak VmRSS, written to OUT as
//	                               "CACHE_BYTES RSS_BYTES"
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) < 3 {
		log.Fatal("usage: probe first-read FILE | fio FILE | fio-write FILE | sample PID DIR OUT")
	}
	var err error
	switch os.Args[1] {
	case "first-read":
		err = firstRead(os.Args[2])
	case "fio":
		err = fioReport(os.Args[2], "read")
	case "fio-write":
		err = fioReport(os.Args[2], "write")
	case "sample":
		if len(os.Args) != 5 {
			log.Fatal("usage: probe sample PID DIR OUT")
		}
		err = sample(os.Args[2], os.Args[3], os.Args[4])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		log.Fatalf("probe: %v", err)
	}
}

func firstRead(path string) error {
	t := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	buf := make([]byte, 4096)
	if _, err := f.ReadAt(buf, st.Size()/2&^4095); err != nil {
		return err
	}
	fmt.Printf("%.3f\n", float64(time.Since(t).Microseconds())/1000)
	return nil
}

// fioReport sums the jobs of a fio --output-format=json report.
func fioReport(path, dir string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	// fio may print warnings before the JSON.
	if i := strings.IndexByte(string(b), '{'); i > 0 {
		b = b[i:]
	}
	var rep struct {
		Jobs []map[string]json.RawMessage `json:"jobs"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var bw, iops, p99 float64
	for _, j := range rep.Jobs {
		var io struct {
			BwBytes float64 `json:"bw_bytes"`
			IOPS    float64 `json:"iops"`
			Clat    struct {
				Percentile map[string]float64 `json:"percentile"`
			} `json:"clat_ns"`
		}
		if err := json.Unmarshal(j[dir], &io); err != nil {
			return err
		}
		if e, ok := j["error"]; ok && string(e) != "0" {
			return fmt.Errorf("fio job error %s", e)
		}
		bw += io.BwBytes
		iops += io.IOPS
		p99 = max(p99, io.Clat.Percentile["99.000000"]/1e6)
	}
	if len(rep.Jobs) == 0 || bw == 0 {
		return fmt.Errorf("%s: no %s figures", path, dir)
	}
	fmt.Printf("%.2f %.1f %.3f\n", bw/1e6, iops, p99)
	return nil
}

func sample(pidArg, dir, out string) error {
	pid, err := strconv.Atoi(pidArg)
	if err != nil {
		return err
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	var peakDisk, peakRSS int64
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	write := func() error {
		return os.WriteFile(out, fmt.Appendf(nil, "%d %d\n", peakDisk, peakRSS), 0o644)
	}
	for {
		peakDisk = max(peakDisk, diskBytes(pid, dir))
		peakRSS = max(peakRSS, rssBytes(pid))
		select {
		case <-stop:
			return write()
		case <-tick.C:
		}
	}
}

// diskBytes is what dir holds on disk plus the deleted files pid has open
// (s3fs keeps its write buffers in unlinked temporary files).
func diskBytes(pid int, dir string) int64 {
	var n int64
	if dir != "" && dir != "-" {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				var st syscall.Stat_t
				if syscall.Lstat(p, &st) == nil {
					n += st.Blocks * 512
				}
			}
			return nil
		})
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		p := fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())
		target, err := os.Readlink(p)
		if err != nil || !strings.HasSuffix(target, " (deleted)") || !strings.HasPrefix(target, "/") {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFREG {
			n += st.Blocks * 512
		}
	}
	return n
}

func rssBytes(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
