// Command rawclient is the benchmark's client-side ceiling and fixture
// loader. It talks to the bucket with cosmount's own transport.Client and
// Uploader, with no file system in between.
//
//	rawclient populate [flags]   create the bucket and the read fixtures
//	rawclient ceiling [flags]    measure GET, PUT, LIST and random reads
//	rawclient putdir [flags] DIR upload a local tree (the small-file ceiling)
//	rawclient wait [flags]       wait until an object is complete
//
// Keys come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Figures are
// appended to -out as JSON lines, one per run and workload.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	"cosmount/auth"
	"cosmount/internal/units"
	"cosmount/transport"
)

// Fixture layout, shared with scripts/bench.sh.
const (
	keyBig    = "bench/big.bin"
	prefixFio = "bench/fio/"
	prefixLs  = "bench/ls/"
	prefixTr  = "bench/tree/"
)

type common struct {
	endpoint, bucket, out, profile string
	runs, firstRun                 int
}

// runNumbers are the numbers of the runs to make, as the figures name them.
func (c *common) runNumbers() []int {
	var n []int
	for i := range c.runs {
		n = append(n, c.firstRun+i)
	}
	return n
}

func (c *common) register(fl *flag.FlagSet) {
	fl.StringVar(&c.endpoint, "endpoint", "", "server URL")
	fl.StringVar(&c.bucket, "bucket", "", "bucket")
	fl.StringVar(&c.out, "out", "", "append JSON lines of figures here")
	fl.StringVar(&c.profile, "profile", "local", "network profile named in the figures")
	fl.IntVar(&c.runs, "runs", 3, "runs of each measurement")
	fl.IntVar(&c.firstRun, "first-run", 1, "number of the first run in the figures (for runs interleaved with a file system's, one at a time)")
}

func (c *common) client() *transport.Client {
	cl, err := transport.New(transport.Config{
		Flavor:   transport.FlavorS3,
		Bucket:   c.bucket,
		Endpoint: c.endpoint, PathStyle: true,
		Credentials: auth.NewStatic(auth.Credentials{
			SecretID:  os.Getenv("AWS_ACCESS_KEY_ID"),
			SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
		}),
	})
	if err != nil {
		log.Fatalf("rawclient: %v", err)
	}
	return cl
}

// figure is one measured value, the record scripts/bench.sh and report use.
type figure struct {
	Profile  string  `json:"profile"`
	FS       string  `json:"fs"`
	Workload string  `json:"workload"`
	Run      int     `json:"run"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Error    string  `json:"error,omitempty"`
}

func (c *common) emit(workload string, run int, value float64, unit string, err error) {
	f := figure{Profile: c.profile, FS: "raw", Workload: workload, Run: run, Value: value, Unit: unit}
	if err != nil {
		f.Error = err.Error()
		log.Printf("rawclient: %s run %d: %v", workload, run, err)
	} else {
		log.Printf("rawclient: %s run %d: %.4g %s", workload, run, value, unit)
	}
	if c.out == "" {
		return
	}
	fh, ferr := os.OpenFile(c.out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if ferr != nil {
		log.Fatal(ferr)
	}
	defer fh.Close()
	_ = json.NewEncoder(fh).Encode(f)
}

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: rawclient populate|ceiling|putdir|wait|count [flags]")
	}
	var err error
	switch os.Args[1] {
	case "populate":
		err = populate(os.Args[2:])
	case "ceiling":
		err = ceiling(os.Args[2:])
	case "wait":
		err = wait(os.Args[2:])
	case "putdir":
		err = putdir(os.Args[2:])
	case "count":
		err = count(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		log.Fatalf("rawclient: %v", err)
	}
}

// sizeFlag is a byte count: 1G, 256M, 16K, 1024.
type sizeFlag int64

func (s *sizeFlag) String() string { return strconv.FormatInt(int64(*s), 10) }
func (s *sizeFlag) Set(v string) error {
	n, err := units.ParseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

func mbps(bytes int64, d time.Duration) float64 { return float64(bytes) / 1e6 / d.Seconds() }
