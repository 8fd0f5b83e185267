package history

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/colinmarc/hdfs/v2"
)

// File is an open history file: Parquet readers need random access.
type File interface {
	io.Reader
	io.ReaderAt
	io.Seeker
	io.Closer
}

// FS is the small filesystem the history store needs. Paths are slash
// separated and absolute for HDFS; the local backend accepts any path the
// operating system does. Rename replaces an existing destination, which is
// what makes re-writing a deterministic file name idempotent.
//
// Implementations are safe for concurrent use.
type FS interface {
	// Create creates (or truncates) a file for writing. Close may be
	// retried internally until the data is durable.
	Create(name string) (io.WriteCloser, error)
	Open(name string) (File, error)
	// Rename moves oldname to newname atomically, replacing newname.
	Rename(oldname, newname string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	MkdirAll(dir string) error
	// ReadDir lists a directory, sorted by name.
	ReadDir(dir string) ([]fs.FileInfo, error)
	Stat(name string) (fs.FileInfo, error)
}

// Closer is implemented by FS backends that hold a connection.
type Closer interface{ Close() error }

// Open returns the FS of the configured backend. The HDFS backend dials the
// namenode(s); close it with Close(fsys) when done.
func Open(ctx context.Context, cfg Config) (FS, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	switch cfg.Backend {
	case BackendHDFS:
		return OpenHDFS(ctx, cfg.NameNodes, cfg.User)
	default:
		return LocalFS{}, nil
	}
}

// Close closes fsys if its backend holds a connection.
func Close(fsys FS) error {
	if c, ok := fsys.(Closer); ok {
		return c.Close()
	}
	return nil
}

// LocalFS is the local-directory backend (the embedded default).
type LocalFS struct{}

// Create implements FS.
func (LocalFS) Create(name string) (io.WriteCloser, error) {
	f, err := os.Create(name)
	if err != nil {
		return nil, err
	}
	return syncCloser{f}, nil
}

// syncCloser fsyncs before close so that a rename after Close never
// exposes a file whose bytes are not on disk.
type syncCloser struct{ *os.File }

func (s syncCloser) Close() error {
	if err := s.File.Sync(); err != nil {
		s.File.Close()
		return err
	}
	return s.File.Close()
}

// Open implements FS.
func (LocalFS) Open(name string) (File, error) { return os.Open(name) }

// Rename implements FS.
func (LocalFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// Remove implements FS.
func (LocalFS) Remove(name string) error { return os.Remove(name) }

// MkdirAll implements FS.
func (LocalFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

// ReadDir implements FS.
func (LocalFS) ReadDir(dir string) ([]fs.FileInfo, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]fs.FileInfo, 0, len(ents))
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since the listing
			}
			return nil, err
		}
		out = append(out, fi)
	}
	return out, nil
}

// Stat implements FS.
func (LocalFS) Stat(name string) (fs.FileInfo, error) { return os.Stat(filepath.Clean(name)) }

// HDFS is the HDFS backend, through github.com/colinmarc/hdfs/v2.
type HDFS struct {
	c *hdfs.Client
	// CloseRetries bounds the retries of FileWriter.Close while the
	// namenode reports the last block still replicating.
	CloseRetries int
}

// OpenHDFS dials the namenodes as user (HADOOP_USER_NAME, then the OS
// user, when empty).
func OpenHDFS(ctx context.Context, namenodes []string, userName string) (*HDFS, error) {
	if userName == "" {
		userName = os.Getenv("HADOOP_USER_NAME")
	}
	if userName == "" {
		if u, err := user.Current(); err == nil {
			userName = u.Username
		}
	}
	type result struct {
		c   *hdfs.Client
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := hdfs.NewClient(hdfs.ClientOptions{Addresses: namenodes, User: userName})
		ch <- result{c, err}
	}()
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("history: connect to hdfs namenodes %v: %w", namenodes, ctx.Err())
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("history: connect to hdfs namenodes %v: %w", namenodes, r.err)
		}
		return &HDFS{c: r.c, CloseRetries: 8}, nil
	}
}

// Client returns the underlying client (for tools such as CopyToLocal).
func (h *HDFS) Client() *hdfs.Client { return h.c }

// Close closes the namenode connection.
func (h *HDFS) Close() error { return h.c.Close() }

// Create implements FS. An existing file (a leftover temporary file) is
// replaced.
func (h *HDFS) Create(name string) (io.WriteCloser, error) {
	if err := h.c.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	w, err := h.c.Create(name)
	if err != nil {
		return nil, err
	}
	return &hdfsWriter{FileWriter: w, retries: h.CloseRetries}, nil
}

// hdfsWriter retries Close on ErrReplicating with exponential back-off, as
// the Java client does: the data is acknowledged by the datanodes but the
// namenode has not yet seen the minimum replication of the last block.
type hdfsWriter struct {
	*hdfs.FileWriter
	retries int
}

func (w *hdfsWriter) Close() error {
	backoff := 50 * time.Millisecond
	var err error
	for i := 0; ; i++ {
		err = w.FileWriter.Close()
		if err == nil || !hdfs.IsErrReplicating(err) || i >= w.retries {
			return err
		}
		time.Sleep(backoff)
		backoff *= 2
	}
}

// Open implements FS.
func (h *HDFS) Open(name string) (File, error) { return h.c.Open(name) }

// Rename implements FS (rename2 with overwrite).
func (h *HDFS) Rename(oldname, newname string) error { return h.c.Rename(oldname, newname) }

// Remove implements FS.
func (h *HDFS) Remove(name string) error { return h.c.Remove(name) }

// MkdirAll implements FS.
func (h *HDFS) MkdirAll(dir string) error { return h.c.MkdirAll(dir, 0o755) }

// ReadDir implements FS.
func (h *HDFS) ReadDir(dir string) ([]fs.FileInfo, error) { return h.c.ReadDir(dir) }

// Stat implements FS.
func (h *HDFS) Stat(name string) (fs.FileInfo, error) { return h.c.Stat(name) }
