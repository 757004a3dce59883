package imports

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/imports/ocds"
	"github.com/tranche-ledger/tranche/internal/procurement"
)

// runOCDS turns each contracting process of the files into a procurement
// item of the grant, its stages and days from the process's timeline.
func (s *Store) runOCDS(ctx context.Context, req Request, rep *Report) error {
	var procs []ocds.Process
	at := map[string]int{}
	for i, f := range req.Files {
		res, err := ocds.ParseBytes(f.Data)
		if err != nil {
			rep.Problems = append(rep.Problems, Problem{Record: "file " + f.Name, Message: err.Error()})
			continue
		}
		rep.Files[i].Records = len(res.Processes)
		for _, p := range res.Processes {
			// A process in several files: the later file's is the newer
			// account of it (files are taken in the order given).
			if k, ok := at[p.OCID]; ok {
				rep.Notes = append(rep.Notes, fmt.Sprintf("process %s: in several files; the one from %s is imported", p.OCID, f.Name))
				procs[k] = p
				continue
			}
			at[p.OCID] = len(procs)
			procs = append(procs, p)
		}
	}
	if len(rep.Problems) > 0 {
		return nil
	}
	rep.Records = len(procs)
	for _, p := range procs {
		for _, in := range p.Inconsistencies {
			rep.Inconsistencies = append(rep.Inconsistencies, Problem{Record: "process " + p.OCID, Field: in.Kind, Message: in.String()})
		}
	}
	g, err := s.ledger.GetGrant(ctx, req.GrantID)
	if errors.Is(err, apperr.ErrNotFound) {
		return apperr.Invalid("grantId", "grant %s does not exist", req.GrantID)
	}
	if err != nil {
		return err
	}
	rep.GrantID, rep.RoadmapID = g.ID, g.RoadmapID
	milestone := req.MilestoneID
	if milestone == uuid.Nil {
		// An item belongs to a milestone; a grant earmarked to one only
		// says which.
		if len(g.Allocations) != 1 {
			return apperr.Invalid("milestoneId", "required: grant %s is allocated to %d milestones, so the items' milestone must be named",
				g.ID, len(g.Allocations))
		}
		milestone = uuid.MustParse(g.Allocations[0].MilestoneID)
		rep.Notes = append(rep.Notes, "milestone: the grant's one allocation, "+g.Allocations[0].MilestoneID)
	}
	runID := uuid.Must(uuid.NewV7()).String()
	day := today()
	return s.inTx(ctx, rep, func(tx pgx.Tx) (bool, error) {
		if err := lockImports(ctx, tx); err != nil {
			return false, err
		}
		if err := alreadyImported(ctx, tx, OCDS, req.GrantID, rep); err != nil {
			return false, err
		}
		ids := make([]string, len(procs))
		for i, p := range procs {
			ids[i] = p.OCID
		}
		st, err := loadStored(ctx, tx, req.GrantID, OCDS, ids)
		if err != nil {
			return false, err
		}
		var items []procurement.ImportItem
		var srcs []source
		var hashes [][]byte
		var inferred [][]string
		var sourceValues []map[string]string
		for _, p := range procs {
			in, adv, probs, ok := p.ItemInput(req.GrantID, milestone, day)
			inf := append([]string(nil), p.Inferred...)
			sv := map[string]string{}
			if !ok {
				// The timeline is what stall and lateness detection needs;
				// an unknown cost is recorded as 0 and said so.
				in.EstimatedCost = amount(decimal.Zero, g.Currency)
				inf = append(inf, "estimatedCost: none in the source, 0 "+g.Currency+" recorded")
			} else if p.EstimatedCost != nil && p.EstimatedCost.Rounded {
				sv["estimatedCost"] = p.EstimatedCost.Source
				rep.Rounded = append(rep.Rounded, Rounded{Record: "process " + p.OCID, Field: "estimatedCost",
					Source: p.EstimatedCost.Source, Stored: p.EstimatedCost.Value.String()})
			}
			for _, pr := range probs {
				rep.Notes = append(rep.Notes, fmt.Sprintf("process %s: %s: %s", p.OCID, pr.Field, pr.Message))
			}
			// The source's process, not the item as of today (later stages
			// are left out until their day): an unchanged file stays unchanged.
			hp := p
			hp.Provenance = ocds.Provenance{}
			h := hashOf(struct {
				P         ocds.Process
				Milestone uuid.UUID
			}{hp, milestone})
			src := source{RecordID: p.OCID, Version: p.Provenance.Version, FileSHA256: p.Provenance.FileSHA256,
				Position: fmt.Sprintf("release %d", p.Provenance.Position)}
			if prev := st[p.OCID]; prev != nil {
				if bytes.Equal(prev.content, h) {
					rep.Unchanged++
				} else {
					// Items and their stages are append-only and a stage never
					// moves back: a changed process is reported, not applied.
					rep.Notes = append(rep.Notes, fmt.Sprintf("process %s: changed since version %s was imported (now %s); the item is left as it is: advance it through the API",
						p.OCID, prev.version, p.Provenance.Version))
				}
				continue
			}
			items = append(items, procurement.ImportItem{Input: in, Stages: adv})
			srcs, hashes, inferred, sourceValues = append(srcs, src), append(hashes, h), append(inferred, inf), append(sourceValues, sv)
		}
		if len(items) == 0 {
			rep.Notes = append(rep.Notes, "nothing to change: every process is in the ledger as the source has it")
			return false, nil
		}
		made, err := s.proc.ImportIn(ctx, tx, items, "import:"+runID)
		if err != nil {
			return false, apperr.Fields(err, func(f string) string {
				var i int
				if n, _ := fmt.Sscanf(f, "procurementItems[%d]", &i); n == 1 && i < len(srcs) {
					rest := ""
					if k := strings.IndexByte(f, '.'); k >= 0 {
						rest = f[k:]
					}
					return "process " + srcs[i].RecordID + rest
				}
				return f
			})
		}
		var prov []provRow
		for k, it := range made {
			prov = append(prov, provRow{entityType: EntityProcurementItem, entityID: it.ID, src: srcs[k], content: hashes[k],
				inferred: inferred[k], sourceValues: sourceValues[k]})
		}
		rep.ProcurementItemsCreated = len(made)
		if err := writeProvenance(ctx, tx, runID, OCDS, req.GrantID, prov); err != nil {
			return false, err
		}
		if req.DryRun {
			return false, nil
		}
		rep.RunID = runID
		return true, writeRun(ctx, tx, runID, OCDS, req.GrantID, rep.Files, rep)
	})
}
