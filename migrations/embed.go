// Package migrations holds the numbered SQL migrations, applied in order by
// tern at start and by `tranche migrate`.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
