package vfs

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// FIEMAP (linux/fiemap.h): a file's extents, and which of them are
// unwritten (allocated by fallocate and never written).
const (
	fsIocFiemap           = 0xC020660B
	fiemapExtentLast      = 0x1
	fiemapExtentUnwritten = 0x800
)

type fiemapExtent struct {
	Logical, Physical, Length uint64
	_                         [2]uint64
	Flags                     uint32
	_                         [3]uint32
}

// fiemap is struct fiemap with room for a batch of extents.
type fiemap struct {
	Start, Length           uint64
	Flags, Mapped, Count, _ uint32
	Extents                 [32]fiemapExtent
}

// writtenPrefix implements File.WrittenPrefix for the file open as fd: it
// walks the extents from offset 0 until a gap (a hole) or an unwritten
// extent, or limit.
func writtenPrefix(fd int, limit int64) (int64, bool) {
	var end uint64
	for end < uint64(limit) {
		start := end
		m := fiemap{Start: end, Length: uint64(limit) - end, Count: uint32(len(fiemap{}.Extents))}
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fsIocFiemap, uintptr(unsafe.Pointer(&m))); errno != 0 {
			return 0, false
		}
		if m.Mapped == 0 {
			break // a hole up to limit
		}
		for _, e := range m.Extents[:m.Mapped] {
			if e.Logical > end || e.Flags&fiemapExtentUnwritten != 0 {
				return int64(min(end, uint64(limit))), true
			}
			end = max(end, e.Logical+e.Length)
			if e.Flags&fiemapExtentLast != 0 {
				return int64(min(end, uint64(limit))), true
			}
		}
		if end == start {
			return 0, false // no progress: an answer not to trust
		}
	}
	return int64(min(end, uint64(limit))), true
}
