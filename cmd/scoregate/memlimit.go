package main

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// memoryLimitShare is the part of the container's memory limit that serve
// gives Go as its soft memory limit: the rest is for what the Go runtime
// does not count (the binary, kernel buffers charged to the cgroup) and
// for the collector to catch up before the kernel's OOM killer would.
const memoryLimitShare = 0.85

// cgroupMemoryFiles are where the container's memory limit is read:
// cgroup v2's memory.max (AKS and ACI today), then cgroup v1's.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// containerMemoryLimit returns the memory limit of the cgroup the process
// runs in, read from the first of files that exists; ok is false without
// one ("max", or cgroup v1's unlimited value, or no file).
func containerMemoryLimit(readFile func(string) ([]byte, error), files []string) (limit int64, ok bool, err error) {
	for _, f := range files {
		b, err := readFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, false, err
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return 0, false, &os.PathError{Op: "parse", Path: f, Err: errors.New("not a memory limit: " + strconv.Quote(v))}
		}
		// cgroup v1 says "unlimited" with a huge number (a page-rounded
		// int64 max); nothing real is near it.
		if n >= 1<<62 {
			return 0, false, nil
		}
		return n, true, nil
	}
	return 0, false, nil
}

// softMemoryLimit is the Go memory limit serve sets from a container
// limit: memoryLimitShare of it.
func softMemoryLimit(containerLimit int64) int64 {
	return int64(float64(containerLimit) * memoryLimitShare)
}
