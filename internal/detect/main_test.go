package detect

import (
	"testing"

	"github.com/tranche-ledger/tranche/internal/testdb"
)

// The package's tests share one throwaway cluster. (One TestMain per test
// binary: the rule tests of this package use this one.)
func TestMain(m *testing.M) { testdb.Main(m) }
