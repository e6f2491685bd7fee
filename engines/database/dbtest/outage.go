package dbtest

import (
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// outage serialises stopping and starting the private server.
var outage sync.Mutex

// PostgresOutage stops the private PostgreSQL (a fast shutdown: sessions are ended, new
// connections refused) and returns a function that starts it again, on the same port with the
// same data, and waits until it answers. The server is started again when the test ends if the
// test did not. The test must not run in parallel with other tests of its package that use
// PostgreSQL. With LEDGER_TEST_POSTGRES_URL there is no server this process may stop, and the
// test is skipped.
func PostgresOutage(t testing.TB) (restart func()) {
	t.Helper()
	PostgresURL(t)
	outage.Lock()
	defer outage.Unlock()
	if pg.srv == nil {
		t.Skipf("dbtest: %s names a PostgreSQL this test may not stop", EnvPostgresURL)
	}
	pg.srv.halt()
	var once sync.Once
	restart = func() {
		t.Helper()
		once.Do(func() {
			if err := restartPostgres(); err != nil {
				t.Fatalf("dbtest: restart PostgreSQL: %v", err)
			}
		})
	}
	t.Cleanup(restart)
	return restart
}

// halt stops the server and waits for it, keeping its directory.
func (s *pgServer) halt() {
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.kill()
	}
}

// restartPostgres starts the private server again over the halted one's data and port.
func restartPostgres() error {
	outage.Lock()
	defer outage.Unlock()
	u, err := url.Parse(pg.url)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return err
	}
	bin, err := findBin()
	if err != nil {
		return err
	}
	cred, err := asPostgres()
	if err != nil {
		return err
	}
	old := pg.srv
	srv, err := launch(bin, old.dir, filepath.Join(old.dir, "data"), port, cred)
	if err != nil {
		return err
	}
	if err := srv.waitReady(pg.url); err != nil {
		srv.kill()
		return err
	}
	pg.srv = srv
	return nil
}
