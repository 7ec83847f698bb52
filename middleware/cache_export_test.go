package middleware

// CacheSlabBytesForTest is the size of the cache's rings (outside the Go
// heap on Linux, see slab_linux.go): an upper bound of what their records
// keep resident.
func CacheSlabBytesForTest(g *Gate) int {
	if g.cache == nil {
		return 0
	}
	n := 0
	for i := range g.cache.shards {
		s := &g.cache.shards[i]
		s.mu.RLock()
		n += len(s.ring)
		s.mu.RUnlock()
	}
	return n
}
