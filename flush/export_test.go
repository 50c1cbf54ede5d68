package flush

import "context"

// waitDurable is WaitDurableSince for a record taken at the current epoch,
// for the tests.
func (p *Pipeline) waitDurable(ctx context.Context, seq uint64) error {
	return p.WaitDurableSince(ctx, seq, p.Epoch())
}

// waitAdvance is WaitAdvanceSince at the current epoch, for the tests.
func (p *Pipeline) waitAdvance(ctx context.Context, past uint64) error {
	return p.WaitAdvanceSince(ctx, past, p.Epoch())
}
