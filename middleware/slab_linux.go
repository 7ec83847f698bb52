//go:build linux && !race

package middleware

import "syscall"

// mapSlab reserves n bytes of address space outside the Go heap for the
// cache's rings: the garbage collector neither scans them nor counts them in
// the heap it paces itself on, and the kernel backs a page only once it is
// written. nil if the mapping fails (the rings then live on the Go heap).
//
// Not under the race detector, which ignores memory outside the Go heap:
// race builds keep the rings on the heap, where it checks them.
func mapSlab(n int) []byte {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	// With transparent huge pages set to "always", a first write would back
	// 2 MiB at once: a mostly empty cache would be resident in full.
	_ = syscall.Madvise(b, syscall.MADV_NOHUGEPAGE)
	return b
}

// unmapSlab releases what mapSlab reserved, once the cache is unreachable.
func unmapSlab(b []byte) { _ = syscall.Munmap(b) }
