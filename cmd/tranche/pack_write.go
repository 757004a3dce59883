package main

import (
	"context"
	"io"
)

// cmdPackWrite is tranche pack --roadmap … -o FILE.
func cmdPackWrite(ctx context.Context, args []string, e map[string]string, stdout io.Writer) error {
	return exitError{code: 2, msg: "tranche pack: not built yet"}
}
