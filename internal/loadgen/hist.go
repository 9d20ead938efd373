package loadgen

import "math/bits"

// Histogram records non-negative integer values (microseconds here) in log-linear buckets, as
// HDR histograms do: values below 1024 exactly, larger ones in 512 buckets per power of two,
// so a reported quantile is within 0.2% of the true value. Min, max, count and sum are exact.
// The zero value is ready to use; it is not safe for concurrent use (merge per-worker copies).
type Histogram struct {
	counts []int64
	n      int64
	sum    int64
	min    int64
	max    int64
}

const (
	subBits    = 9                  // 512 sub-buckets per power of two
	exactLimit = 1 << (subBits + 1) // values below this have their own bucket
)

// bucketOf returns the bucket index of v ≥ 0.
func bucketOf(v int64) int {
	if v < exactLimit {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - (subBits + 1) // ≥ 1
	top := int(v >> uint(shift))                   // in [512, 1024)
	return exactLimit + (shift-1)<<subBits + top - 1<<subBits
}

// bucketHigh returns the largest value that falls in bucket i.
func bucketHigh(i int) int64 {
	if i < exactLimit {
		return int64(i)
	}
	j := i - exactLimit
	shift := j>>subBits + 1
	top := int64(j&(1<<subBits-1) + 1<<subBits)
	return (top+1)<<uint(shift) - 1
}

// Record adds one value; a negative value counts as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	i := bucketOf(v)
	if i >= len(h.counts) {
		n := max(2*len(h.counts), i+1, exactLimit)
		c := make([]int64, n)
		copy(c, h.counts)
		h.counts = c
	}
	h.counts[i]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
}

// Merge adds every value of o.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		c := make([]int64, len(o.counts))
		copy(c, h.counts)
		h.counts = c
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of values recorded.
func (h *Histogram) Count() int64 { return h.n }

// Min is the smallest value recorded (0 when empty).
func (h *Histogram) Min() int64 { return h.min }

// Max is the largest value recorded (0 when empty).
func (h *Histogram) Max() int64 { return h.max }

// Mean is the integer mean of the values (0 when empty).
func (h *Histogram) Mean() int64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / h.n
}

// Quantile returns the value at or below which permille/1000 of the values lie (500 is the
// median, 990 the 99th percentile): the highest value of the bucket holding that rank, capped
// by the exact maximum. It returns 0 when empty.
func (h *Histogram) Quantile(permille int) int64 {
	if h.n == 0 {
		return 0
	}
	permille = min(max(permille, 0), 1000)
	// rank is the 1-based position of the value sought: ceil(n·permille/1000), at least 1.
	rank := max((h.n*int64(permille)+999)/1000, 1)
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketHigh(i), h.max)
		}
	}
	return h.max
}
