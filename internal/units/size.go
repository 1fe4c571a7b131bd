// Package units reads byte counts written the way people write them.
package units

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize reads a byte count with an optional binary unit: 1048576, 512K,
// 8M, 1G, 2T, 1GiB, 64MB (K, M, G and T are powers of 1,024).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "IB"), "B")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (examples: 1048576, 512K, 8M, 1G)", s)
	}
	return n * mult, nil
}
