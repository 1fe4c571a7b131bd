package main

// row is one workload of the tables.
type row struct {
	id, label   string
	lowerBetter bool
	// ceilings are the workloads of the FUSE ceiling ("fuse") and of the raw
	// client ("raw") this row is compared with; the lower performance of
	// those present is the ceiling.
	fuse, raw string
}

// rows in table order. Their ids are what scripts/bench.sh and rawclient emit.
var rows = []row{
	{id: "read-cold-dd", label: "1 seq read, cold, dd bs=1M", fuse: "read-cold-dd", raw: "raw-get-parallel"},
	{id: "read-warm-dd", label: "1 seq read, warm re-read, dd", fuse: "read-warm-dd"},
	{id: "read-cold-fio", label: "1 seq read, cold, fio 4 jobs × 4 files", fuse: "read-cold-fio", raw: "raw-get-parallel"},
	{id: "read-warm-fio", label: "1 seq read, warm, fio 4 jobs", fuse: "read-warm-fio"},
	{id: "write-dd", label: "2 seq write, dd bs=1M conv=fsync", fuse: "write-dd", raw: "raw-put-multipart"},
	{id: "write-cp", label: "2 seq write, cp (close included)", fuse: "write-cp", raw: "raw-put-multipart"},
	{id: "first-4k", label: "3 first 4 KiB on a cold mount", lowerBetter: true, raw: "first-4k"},
	{id: "randread-4k-iops", label: "3 randread 4 KiB, cold, iodepth 16: IOPS", fuse: "randread-4k-iops"},
	{id: "randread-4k-p99", label: "3 randread 4 KiB, cold: p99", lowerBetter: true, fuse: "randread-4k-p99"},
	{id: "randread-4k-warm-iops", label: "3 randread 4 KiB, blocks cached: IOPS", fuse: "randread-4k-warm-iops"},
	{id: "randread-4k-warm-p99", label: "3 randread 4 KiB, blocks cached: p99", lowerBetter: true, fuse: "randread-4k-warm-p99"},
	{id: "randread-128k-iops", label: "3 randread 128 KiB, cold: IOPS", fuse: "randread-128k-iops"},
	{id: "randread-128k-p99", label: "3 randread 128 KiB, cold: p99", lowerBetter: true, fuse: "randread-128k-p99"},
	{id: "ls-l", label: "4 ls -l of a flat directory, cold", lowerBetter: true, raw: "ls-head"},
	{id: "ls-l-fastlist", label: "4 ls -l, cold, cosmount --fast-list", lowerBetter: true, raw: "ls"},
	{id: "find", label: "4 find over the tree, cold", lowerBetter: true, raw: "find"},
	{id: "du", label: "4 du -s of the tree, right after find", lowerBetter: true, raw: "find"},
	{id: "cp-r", label: "5 cp -r of small files into the mount", lowerBetter: true, raw: "cp-r"},
	{id: "rsync1", label: "5 rsync -a of the same tree, first", lowerBetter: true},
	{id: "rsync1-left", label: "5 temporary files the first rsync left in the bucket", lowerBetter: true},
	{id: "rsync2", label: "5 rsync -a again, nothing changed", lowerBetter: true},
	{id: "rsync2-files", label: "5 files the second rsync transferred", lowerBetter: true},
	{id: "tar", label: "6 tar -xf of the mixed archive", lowerBetter: true, raw: "tar"},
	{id: "rss-read", label: "7 peak RSS during 1", lowerBetter: true},
	{id: "rss-write", label: "7 peak RSS during 2", lowerBetter: true},
	{id: "cache-disk", label: "7 peak bytes on the cache disk during 2", lowerBetter: true},
}

// rawRows are the raw client's own figures, shown in the ceilings table.
var rawRows = []row{
	{id: "raw-get-single", label: "single-stream GET"},
	{id: "raw-get-parallel", label: "parallel ranged GET, cold (the ceiling of cold reads)"},
	{id: "raw-get-parallel-warm", label: "parallel ranged GET, the server's page cache warm"},
	{id: "raw-put-single", label: "single PUT"},
	{id: "raw-put-multipart", label: "parallel multipart PUT (Uploader defaults)"},
	{id: "first-4k", label: "first 4 KiB, new connection", lowerBetter: true},
	{id: "randread-4k-iops", label: "random 4 KiB ranged GETs, 16 in flight: IOPS"},
	{id: "randread-4k-p99", label: "random 4 KiB ranged GETs: p99", lowerBetter: true},
	{id: "randread-128k-iops", label: "random 128 KiB ranged GETs, 16 in flight: IOPS"},
	{id: "randread-128k-p99", label: "random 128 KiB ranged GETs: p99", lowerBetter: true},
	{id: "ls", label: "paged LIST of the flat directory", lowerBetter: true},
	{id: "ls-head", label: "that LIST and a HEAD of every object, in parallel", lowerBetter: true},
	{id: "find", label: "paged LIST of the whole tree", lowerBetter: true},
	{id: "cp-r", label: "PUT of the small files, 16 in flight", lowerBetter: true},
	{id: "tar", label: "PUT of the archive's files, 16 in flight", lowerBetter: true},
}

// filesystems in column order, with their headings.
var filesystems = []struct{ id, label string }{
	{"cosmount", "cosmount"},
	{"s3fs", "s3fs"},
	{"rclone", "rclone"},
	{"rclone-writes", "rclone --vfs-cache-mode writes"},
}
