package imports

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/tranche-ledger/tranche/internal/postgres"
)

// Provenance says where a stored record came from.
type Provenance struct {
	SourceKind    string            `json:"sourceKind"`
	FileSHA256    string            `json:"fileSha256"`
	RecordID      string            `json:"recordId"`
	RecordVersion string            `json:"recordVersion"`
	Position      string            `json:"position"`
	Inferred      []string          `json:"inferred"`
	SourceValues  map[string]string `json:"sourceValues"`
	RunID         string            `json:"runId"`
	ImportedAt    time.Time         `json:"importedAt"`
}

// Entity types provenance is kept for.
const (
	EntityOrganization    = "organization"
	EntityGrant           = "grant"
	EntityTransaction     = "transaction"
	EntityProcurementItem = "procurement_item"
)

// ProvenanceOf reads the provenance of the given records of one entity type,
// by id; records entered through the API have none and are absent.
func ProvenanceOf(ctx context.Context, q postgres.Querier, entityType string, ids []string) (map[string]Provenance, error) {
	out := map[string]Provenance{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT p.entity_id::text, p.source_kind, p.file_sha256, p.record_id, p.record_version, p.position,
			p.inferred, p.source_values, p.run_id::text, r.imported_at
		FROM provenance p JOIN import_runs r ON r.id = p.run_id
		WHERE p.entity_type = $1 AND p.entity_id = ANY ($2::uuid[])`, entityType, ids)
	if err != nil {
		return nil, fmt.Errorf("reading provenance: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var p Provenance
		var sum []byte
		if err := rows.Scan(&id, &p.SourceKind, &sum, &p.RecordID, &p.RecordVersion, &p.Position, &p.Inferred,
			&p.SourceValues, &p.RunID, &p.ImportedAt); err != nil {
			return nil, fmt.Errorf("reading provenance: %w", err)
		}
		p.FileSHA256 = hex.EncodeToString(sum)
		if p.SourceValues == nil {
			p.SourceValues = map[string]string{}
		}
		out[id] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading provenance: %w", err)
	}
	return out, nil
}
