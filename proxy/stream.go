package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"sigs.k8s.io/knftables"
)

// batch is one nftables transaction written in pieces: everything added
// takes effect at once on commit, or not at all.
type batch interface {
	// add appends what fill puts into a transaction.
	add(fill func(tx *knftables.Transaction))
	// addElements adds elements to one map or set, in as few commands as
	// the batch can: nft spends as much on a command as on its elements.
	addElements(m string, elems []element)
	commit() error
}

// newBatch starts a transaction. With an nft command set (the real
// dataplane), pieces are streamed to one `nft -f -` as they are written, so
// a full sync never holds the whole table as objects and as text at once:
// at 10,000 Services that was the proxy's peak memory (and knftables keeps
// the biggest text it ever wrote as a buffer for good). nft applies its
// whole input as one transaction, exactly as it does for knftables' Run.
// Without one (tests, on knftables' fake) the pieces go into one knftables
// transaction.
func (t *table) newBatch(ctx context.Context) (batch, error) {
	if t.nftCommand == "" {
		return &txBatch{ctx: ctx, nft: t.nft, tx: t.nft.NewTransaction()}, nil
	}
	cmd := exec.CommandContext(ctx, t.nftCommand, "-f", "-")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	s := &streamBatch{nft: t.nft, table: t.name, cmd: cmd, stdin: stdin, w: bufio.NewWriterSize(stdin, 64<<10)}
	cmd.Stdout, cmd.Stderr = &s.out, &s.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("nft: %w", err)
	}
	return s, nil
}

type txBatch struct {
	ctx context.Context
	nft knftables.Interface
	tx  *knftables.Transaction
}

func (b *txBatch) add(fill func(tx *knftables.Transaction)) { fill(b.tx) }
func (b *txBatch) addElements(m string, elems []element) {
	for _, e := range elems {
		addElement(b.tx, m, e.key, e.value)
	}
}
func (b *txBatch) commit() error { return b.nft.Run(b.ctx, b.tx) }

type streamBatch struct {
	nft   knftables.Interface
	table string // ip family
	cmd   *exec.Cmd
	stdin io.WriteCloser
	w     *bufio.Writer
	out   bytes.Buffer
	err   error // the first write error: nft stopped reading
}

func (b *streamBatch) add(fill func(tx *knftables.Transaction)) {
	if b.err != nil {
		return
	}
	tx := b.nft.NewTransaction()
	fill(tx)
	_, b.err = b.w.WriteString(tx.String())
}

// elementsPerCommand bounds one add element command (nft parses a command
// whole before it runs it).
const elementsPerCommand = 1000

func (b *streamBatch) addElements(m string, elems []element) {
	for len(elems) > 0 && b.err == nil {
		chunk := elems[:min(len(elems), elementsPerCommand)]
		elems = elems[len(chunk):]
		b.w.WriteString("add element ip " + b.table + " " + m + " { ")
		for i, e := range chunk {
			if i > 0 {
				b.w.WriteString(", ")
			}
			b.w.WriteString(e.key)
			if e.value != "" {
				b.w.WriteString(" : " + e.value)
			}
		}
		_, b.err = b.w.WriteString(" }\n")
	}
}

func (b *streamBatch) commit() error {
	if b.err == nil {
		b.err = b.w.Flush()
	}
	_ = b.stdin.Close()
	if err := b.cmd.Wait(); err != nil {
		// nft names the line at fault on its output; a broken pipe only
		// says that it stopped reading.
		return fmt.Errorf("nft -f -: %w: %s", err, strings.TrimSpace(b.out.String()))
	}
	return b.err
}
