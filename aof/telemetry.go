package aof

import (
	"go.opentelemetry.io/otel/attribute"

	aofotel "github.com/aof2/aof2/otel"
)

// recoverEvents turns a recovery report into the events of the aof.recover
// span: one per segment kept, cut or removed.
func recoverEvents(rep *RecoveryReport) []aofotel.RecoverEvent {
	var events []aofotel.RecoverEvent
	for _, s := range rep.Recovered {
		name := aofotel.EventSegmentScanned
		if s.Trusted {
			name = aofotel.EventSegmentTrusted
		}
		events = append(events, aofotel.RecoverEvent{Name: name, Attrs: []attribute.KeyValue{
			aofotel.AttrFile.String(s.File), aofotel.AttrSegment.Int64(int64(s.Segment)),
			aofotel.AttrRecords.Int64(int64(s.Records)), aofotel.AttrBytes.Int64(s.Bytes),
		}})
	}
	for _, t := range rep.Truncations {
		events = append(events, aofotel.RecoverEvent{Name: aofotel.EventSegmentTruncated, Attrs: []attribute.KeyValue{
			aofotel.AttrFile.String(t.File), aofotel.AttrSegment.Int64(int64(t.Segment)),
			aofotel.AttrOffset.Int64(t.Offset), aofotel.AttrBytes.Int64(t.Bytes),
			aofotel.AttrCorrupt.Bool(t.Corrupt), aofotel.AttrReason.String(t.Reason),
		}})
	}
	for _, name := range rep.Removed {
		events = append(events, aofotel.RecoverEvent{Name: aofotel.EventSegmentRemoved, Attrs: []attribute.KeyValue{aofotel.AttrFile.String(name)}})
	}
	return events
}

// observe fills the values of the observable instruments from one Metrics
// snapshot, so telemetry and Metrics() never disagree.
func (l *Log) observe(v *aofotel.Values) {
	m := l.Metrics()
	*v = aofotel.Values{
		Flush:                  m.flush,
		AppendedRecords:        m.AppendedRecords,
		AppendedBytes:          m.AppendedBytes,
		BacklogBytes:           m.BacklogBytes,
		DurableBytes:           m.DurableBytes,
		Segments:               m.Segments,
		RecoveryTruncatedBytes: l.report.TruncatedBytes,
		RemovedSegments:        m.RemovedSegments,
		PrewrittenBytes:        m.PrewrittenBytes,
		PrewriteFailures:       m.PrewriteFailures,
		RecycledSegments:       m.RecycledSegments,
		EarlyRollovers:         m.EarlyRollovers,
	}
}
