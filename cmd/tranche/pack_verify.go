package main

import (
	"context"
	"io"
)

// cmdPackVerify is tranche pack verify FILE.
func cmdPackVerify(ctx context.Context, args []string, e map[string]string, stdout io.Writer) error {
	return exitError{code: 2, msg: "tranche pack verify: not built yet"}
}
