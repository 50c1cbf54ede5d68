package segment

// This file is for read-only inspection of a log that a writer in another
// process may be changing (package inspect): a segment opened with
// OpenReadOnly is brought up to date with its file by Observe, and read
// with Locate and ViewFrame like any other. Nothing here is for a segment
// the log itself writes.

// Observe brings a segment opened with OpenReadOnly up to date with its
// file and makes what it found readable (Reserved, Locate, ViewFrame): if
// the file was sealed since (its trailer and footer verify), the footer
// is trusted as OpenReadOnly trusts it; otherwise the frames after the
// readable end are checked, from where the last Observe stopped (so a look
// when nothing is new costs one frame header), and every complete, valid
// one becomes readable. Records from seq upTo on never become readable: a
// sealed segment is cut short there too (a TruncateBack that a CUT mark
// says ends the log before upTo). Its caller serialises Observe and
// Judge; readers may read meanwhile.
//
// stuck reports that the walk stopped at bytes that are not zeros and not
// a complete, valid frame (before upTo): a write in progress, a torn tail
// or damage. Judge tells which.
func (s *Segment) Observe(upTo uint64) (stuck bool) {
	if !s.sealed.Load() {
		if f, ok := s.readFooter(); ok {
			s.mu.Lock()
			s.index = f.Index
			s.mu.Unlock()
			s.scanCount = f.Count
			s.resv.Store(packResv(f.DataEnd, f.Count) | closedBit)
			s.complete.Store(f.DataEnd)
			s.sealed.Store(true)
		}
	}
	end, count := s.Reserved()
	base := s.hdr.BaseSeq
	if upTo < base+count {
		// Cut short: the readable end is the frame of upTo.
		if upTo <= base {
			end, count = HeaderSize, 0
		} else if off, err := s.Locate(upTo); err == nil {
			end, count = off, upTo-base
		}
		s.setReadable(end, count)
		return false
	}
	if s.sealed.Load() {
		return false
	}
	end = max(end, HeaderSize) // nothing observed yet
	off, seq, _ := s.walk(end, base+count, upTo)
	if off != end {
		s.setReadable(off, seq-base)
	}
	if seq >= upTo || off+FrameHeaderSize > s.limit || zero(s.rmap[off:off+FrameHeaderSize]) {
		return false
	}
	// A recycled file holds its earlier life's bytes past this life's
	// frames: only a frame that looks like this life's (ownAt, recovery's
	// rule) is stuck; the rest is space not written yet, like zeros.
	// (Damage that leaves no trace of this life's frame there is found
	// once the segment is sealed, or by the writer's recovery.)
	return !s.hdr.Recycled || s.ownAt(off, seq) > 0
}

// setReadable makes the first count records, which end at end, what
// readers of a read-only segment see.
func (s *Segment) setReadable(end int64, count uint64) {
	w := packResv(end, count)
	if s.sealed.Load() {
		w |= closedBit
	}
	s.resv.Store(w)
	s.complete.Store(end)
}

// zero reports whether b is all zeros.
func zero(b []byte) bool { return lastNonZero(b) < 0 }

// Judge tells, for a segment Observe found stuck, what the bytes after
// its readable end are, as recovery's Scan judges them: Corrupt is set
// when vouched (the offset a DURABLE mark vouches for in this segment, or
// 0) or a good frame further on says they were durable (damage); otherwise
// Garbage counts them (a torn tail, or on a live log a write in progress).
// End and Count are the readable end; the durable fields are not set. It
// reads up to the whole rest of the segment.
func (s *Segment) Judge(vouched int64) ScanResult {
	end, count := s.Reserved()
	seq := s.hdr.BaseSeq + count
	r := ScanResult{End: end, Count: count, Corrupt: s.vouchedPast(end, seq, vouched)}
	var corrupt error
	r.Garbage, corrupt = s.tail(end, seq)
	if r.Corrupt == nil {
		r.Corrupt = corrupt
	}
	return r
}

// Mapping returns the read-only shared mapping of the segment file, bytes
// [0, Header().Size), of a segment opened with OpenReadOnly, for tools that
// check every byte with the format's decoders (SealedFooter,
// DecodeFrameHeader, VerifyFrame). It is valid until Release.
func (s *Segment) Mapping() []byte { return s.rmap }
