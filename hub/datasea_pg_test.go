package hub_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/connectors/datasea/dataseasim"
	"github.com/shanghai-mca/mzhub/hub/hubtest"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestIntegrationDataseaFrontEnd runs the documented front-end processor
// route (docs/examples/routes/datasea-frontend.yaml) in the whole hub
// against a real PostgreSQL as the front-end database: the platform's rows
// reach the allowance rules once each, marked taken, rows written again
// change nothing, a malformed row is quarantined.
func TestIntegrationDataseaFrontEnd(t *testing.T) {
	dsn := os.Getenv("MZHUB_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("MZHUB_TEST_POSTGRES not set: skipping the front-end table route (deploy/postgres/start.sh starts a server)")
	}
	ctx := context.Background()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	schema := storetest.Name("qzj")
	if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
		_ = db.Close()
	})
	if _, err := db.Exec(`CREATE TABLE ` + schema + `.gaj_swry_qy (id BIGSERIAL PRIMARY KEY, load_seq BIGINT NOT NULL,
		record_id TEXT, type TEXT, id_number TEXT, name TEXT, event_date DATE, district TEXT, region TEXT, mzhub_taken_at TIMESTAMPTZ)`); err != nil {
		t.Fatal(err)
	}
	recs := dataseasim.Generate(30, 9, "2026-11-28", 3)
	insert := func(seq int, r datasea.Record) {
		if _, err := db.Exec(`INSERT INTO `+schema+`.gaj_swry_qy (load_seq, record_id, type, id_number, name, event_date, district, region)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, seq, r.ID, string(r.Kind), r.IDNumber, r.Name, r.Date, r.District, r.Region); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range recs {
		insert(i/10+1, r)
	}
	insert(4, recs[0]) // the platform writes a record twice
	insert(4, datasea.Record{ID: "BADROW", Kind: "death", IDNumber: "310101190001011231", Date: "2026-11-28", District: "310101"})

	route, err := os.ReadFile(filepath.Join("..", "docs", "examples", "routes", "datasea-frontend.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	routes := filepath.Join(t.TempDir(), "routes")
	if err := os.MkdirAll(routes, 0o755); err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(route), "qzj.gaj_swry_qy", schema+".gaj_swry_qy")
	text = strings.ReplaceAll(text, "interval: 1m", "interval: 50ms")
	if err := os.WriteFile(filepath.Join(routes, "datasea-frontend.yaml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MZHUB_DATASEA_FRONTEND_DSN", dsn)
	srv := hubtest.Start(t, hubtest.Options{Configure: func(c *config.Config) {
		c.Paths.Routes = routes
		dc := datasea.DefaultConfig() // no API: the front-end tables only
		if err := config.SetSection(c, datasea.ConfigKey, dc); err != nil {
			t.Fatal(err)
		}
	}})
	late := time.After(60 * time.Second)
	var applied, bad int
	for {
		stored := srv.Hub.Monitor().Writer().Stored()
		_ = srv.Hub.Store().QueryRowContext(ctx, `SELECT COUNT(*) FROM allow_records`).Scan(&applied)
		_ = srv.Hub.Store().QueryRowContext(ctx, `SELECT COUNT(*) FROM allow_quarantine`).Scan(&bad)
		if applied == len(recs) && bad == 1 {
			break
		}
		select {
		case <-stored:
		case <-late:
			t.Fatalf("%d of %d records applied, %d quarantined", applied, len(recs), bad)
		}
	}
	var untaken int
	if err := db.QueryRow(`SELECT COUNT(*) FROM ` + schema + `.gaj_swry_qy WHERE mzhub_taken_at IS NULL`).Scan(&untaken); err != nil || untaken != 0 {
		t.Fatalf("%d rows not marked taken (%v)", untaken, err)
	}
	var src string
	if err := srv.Hub.Store().QueryRowContext(ctx, `SELECT source FROM allow_records WHERE record_id = ?`, recs[0].ID).Scan(&src); err != nil || src != "dbtable" {
		t.Fatalf("source %q: %v", src, err)
	}
}
