package detect

import (
	"testing"

	"github.com/tranche-ledger/tranche/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }
