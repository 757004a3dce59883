package demo

import (
	"embed"
	"io/fs"
	"path"
)

// ftsPages are the real OCHA Financial Tracking Service flows of
// Afghanistan, 2020 (/v1/public/fts/flow?locationid=1&year=2020, 484 flows
// in three pages), as the importer's tests use them: the demo imports them
// as a second roadmap so real figures sit beside the generated ones.
//
//go:embed data/afghanistan-2020-page-*.json
var ftsPages embed.FS

// FTSFiles answers the embedded FTS pages, by name, in page order.
func FTSFiles() (names []string, data [][]byte) {
	entries, err := fs.Glob(ftsPages, "data/afghanistan-2020-page-*.json")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		b, err := ftsPages.ReadFile(e)
		if err != nil {
			panic(err)
		}
		names = append(names, path.Base(e))
		data = append(data, b)
	}
	return names, data
}

// FTSRoadmapTitle is the title of the roadmap the FTS pages are imported
// into: how a second start finds it.
const FTSRoadmapTitle = "Afghanistan 2020 — OCHA FTS flows (real data, imported by tranche demo)"
