// Package pgtest starts a real PostgreSQL 15 server for tests and
// benchmarks: initdb and pg_ctl of Debian's postgresql-15 package, in a
// temporary directory, listening only on a unix socket in that directory,
// stopped and removed when the test ends.
//
// PostgreSQL refuses to run as root. When the test runs as root (as in CI),
// the server runs as the unprivileged user "nobody" and the directory is
// given to it; otherwise it runs as the test's own user.
//
// When the binaries are missing, Start fails the test with a message that
// says how to install them: a backend test that does not run must not look
// like one that passed.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDir is where Debian's postgresql-15 package installs the server.
const BinDir = "/usr/lib/postgresql/15/bin"

// superuser is the server's superuser, trusted on the unix socket.
const superuser = "blindex"

// Server is a running PostgreSQL server.
type Server struct {
	dir  string // the temporary directory: data/, the socket, the log
	cred *syscall.Credential
	opts string // the server's options (pg_ctl -o)
	dbs  atomic.Int64
}

// Start starts a server for t and registers its stop. It fails t when the
// PostgreSQL 15 binaries are not installed or the server does not start.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(s.stop)
	return s
}

func start() (*Server, error) {
	for _, bin := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(BinDir, bin)); err != nil {
			return nil, fmt.Errorf("PostgreSQL 15 is not installed (%s/%s: %v); the PostgreSQL backend's tests need it: install it with 'apt-get update && apt-get install -y postgresql-15' (.ci/run does this)",
				BinDir, bin, errors.Unwrap(err))
		}
	}
	// Not t.TempDir: its parents are private to root, and the server may
	// run as another user. As root, in /tmp, which every user can
	// traverse ($TMPDIR may not be). The socket path must stay short (107
	// bytes).
	base := ""
	if os.Geteuid() == 0 {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "blindex-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root, and there is no user 'nobody' to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := s.run("initdb", "-D", data, "-U", superuser, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	s.opts = strings.Join([]string{
		"-c listen_addresses=''",
		"-c unix_socket_directories=" + dir,
		"-c max_connections=100",
		"-c shared_buffers=64MB",
	}, " ")
	if out, err := s.run("pg_ctl", "start", "-D", data, "-w", "-t", "60", "-l", filepath.Join(dir, "log"), "-o", s.opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	return s, nil
}

// run runs one of the server's binaries as the server's user.
func (s *Server) run(bin string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(BinDir, bin), args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=" + s.dir}
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd.CombinedOutput()
}

// stop stops the server (fast shutdown) and removes its directory.
func (s *Server) stop() {
	s.run("pg_ctl", "stop", "-D", filepath.Join(s.dir, "data"), "-m", "fast", "-w", "-t", "60")
	os.RemoveAll(s.dir)
}

// Stop stops the server now, for tests of an unavailable database; the
// directory stays until the test ends. Restart starts it again.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if out, err := s.run("pg_ctl", "stop", "-D", filepath.Join(s.dir, "data"), "-m", "fast", "-w", "-t", "60"); err != nil {
		t.Fatalf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
}

// Restart starts the server again after Stop.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if out, err := s.run("pg_ctl", "start", "-D", filepath.Join(s.dir, "data"), "-w", "-t", "60", "-l", filepath.Join(s.dir, "log"), "-o", s.opts); err != nil {
		t.Fatalf("pgtest: pg_ctl start: %v\n%s", err, out)
	}
}

// URL returns the connection URL of database db as the superuser.
func (s *Server) URL(db string) string {
	q := url.Values{"host": {s.dir}, "sslmode": {"disable"}}
	return (&url.URL{Scheme: "postgres", User: url.User(superuser), Path: "/" + db, RawQuery: q.Encode()}).String()
}

// NewDatabase creates a new, empty database and returns its URL.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", s.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return s.URL(name)
}
