package main

import (
	"context"
	"io"
)

// cmdPack writes an audit pack (tranche pack …) or checks one (tranche pack
// verify FILE).
func cmdPack(ctx context.Context, args []string, e map[string]string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "verify" {
		return cmdPackVerify(ctx, args[1:], e, stdout)
	}
	return cmdPackWrite(ctx, args, e, stdout)
}
