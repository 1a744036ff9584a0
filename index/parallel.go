package index

import (
	"sync"
	"sync/atomic"
)

// forEach calls fn(w, i) for every i in [0, n) on up to workers
// goroutines, the caller's among them, each taking the next i in turn; w
// is the goroutine's number (0 for the caller's), for state fn keeps per
// goroutine. It returns when every call has.
func forEach(n, workers int, fn func(w, i int)) {
	workers = min(workers, n)
	var next atomic.Int64
	work := func(w int) {
		for {
			i := int(next.Add(1)) - 1
			if i >= n {
				return
			}
			fn(w, i)
		}
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(w)
		}()
	}
	work(0)
	wg.Wait()
}
