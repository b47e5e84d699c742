package holder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/proto"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
)

// DeltaLogExt ends the name of every local delta log (after FileExt).
const DeltaLogExt = ".deltas"

// minLogLimit is the size a delta log may always reach before the full copy is
// rewritten (small environments: rewriting is cheap, but not worth every change).
const minLogLimit = 256 << 10

// diskState is what the local copy of one environment holds: a full copy of
// fullSize bytes followed by logSize bytes of deltas up to version last.
type diskState struct {
	last              uint64
	fullSize, logSize int64
}

// persistFull writes sm as target's local copy (temp file, fsync, rename) and
// empties its delta log. Failures are logged: serving does not depend on the disk.
// Called with h.mu held.
func (h *Holder) persistFull(target string, sm *manifestv1.SignedManifest) {
	if h.cfg.DataDir == "" {
		return
	}
	delete(h.disk, target)
	path := Path(h.cfg.DataDir, target)
	n, err := writeFile(path, sm)
	if err == nil {
		err = os.Remove(path + DeltaLogExt)
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	}
	if err != nil {
		h.log.Error("writing local manifest copy", "environment", target, "err", err)
		return
	}
	h.disk[target] = &diskState{last: versionOf(sm), fullSize: n}
}

func versionOf(sm *manifestv1.SignedManifest) uint64 {
	var m manifestv1.Manifest
	if sh := sm.GetHeader(); sh != nil {
		var hd manifestv1.ManifestHeader
		if proto.Unmarshal(sh.GetHeader(), &hd) == nil {
			return hd.GetVersion()
		}
		return 0
	}
	if proto.Unmarshal(sm.GetPayload(), &m) == nil {
		return m.GetVersion()
	}
	return 0
}

// persistDelta records next, reached by sd, on disk: appended to the delta log
// when the local copy holds the version before it and the log stays smaller than
// the full copy (or minLogLimit), otherwise as a new full copy: writing costs what
// the deltas weigh, amortized. Called with h.mu held.
func (h *Holder) persistDelta(target string, sd *manifestv1.SignedDelta, next *manifest.Version) {
	if h.cfg.DataDir == "" {
		return
	}
	st := h.disk[target]
	rec, err := proto.Marshal(sd)
	if err != nil || next.Format() != manifest.FormatV2 || st == nil || st.last != next.Number()-1 ||
		st.logSize+int64(len(rec))+4 > max(st.fullSize, minLogLimit) {
		if sm, serr := next.Signed(); serr == nil {
			h.persistFull(target, sm)
		} else {
			delete(h.disk, target) // the copy on disk is older: a restart re-reads the source
		}
		return
	}
	path := Path(h.cfg.DataDir, target) + DeltaLogExt
	if err := appendRecord(path, rec); err != nil {
		h.log.Error("appending to the local delta log", "environment", target, "err", err)
		delete(h.disk, target)
		return
	}
	st.last = next.Number()
	st.logSize += int64(len(rec)) + 4
}

// appendRecord appends a length-prefixed record to path and fsyncs it.
func appendRecord(path string, rec []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, len(rec)+4), uint32(len(rec))) //nolint:gosec // a delta is far below 4 GiB
	_, err = f.Write(append(buf, rec...))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readRecords returns the complete records of a delta log (a torn last record, from
// a crash while appending, is dropped).
func readRecords(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 4 {
		n := binary.BigEndian.Uint32(b)
		if uint64(len(b)-4) < uint64(n) {
			break
		}
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	return out
}

func writeFile(path string, sm *manifestv1.SignedManifest) (int64, error) {
	if path == "" {
		return 0, errors.New("unsafe environment name")
	}
	b, err := proto.Marshal(sm)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return int64(len(b)), err
}

// LoadLocal offers the local copies (of the configured environments, or every copy
// in the data dir) as manifests, then the deltas logged after each. Copies and
// deltas that do not verify are refused like any other; a missing copy is not an
// error. It returns how many environments loaded.
func (h *Holder) LoadLocal() int {
	if h.cfg.DataDir == "" {
		return 0
	}
	var paths []string
	if h.serves != nil {
		for _, t := range h.cfg.Environments {
			paths = append(paths, Path(h.cfg.DataDir, t))
		}
	} else {
		matches, err := filepath.Glob(filepath.Join(h.cfg.DataDir, "*", "*", "*"+FileExt))
		if err != nil {
			h.log.Error("listing local manifest copies", "err", err)
		}
		paths = matches
	}
	n := 0
	for _, p := range paths {
		if p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			h.log.Error("reading local manifest copy", "path", p, "err", err)
			continue
		}
		var sm manifestv1.SignedManifest
		if err := proto.Unmarshal(b, &sm); err != nil {
			_ = h.refuse("", fmt.Errorf("%w: local copy %s: %w", manifest.ErrMalformed, p, err))
			continue
		}
		rel, _ := filepath.Rel(h.cfg.DataDir, p)
		target := strings.TrimSuffix(filepath.ToSlash(rel), FileExt)
		if err := h.offer(target, &sm, false); err != nil {
			continue
		}
		n++
		h.replay(target, p, int64(len(b)))
	}
	return n
}

// replay applies the deltas logged after target's full copy (path) and records
// what the disk holds; when the log does not apply to its end, the next version
// is written as a full copy.
func (h *Holder) replay(target, path string, fullSize int64) {
	b, err := os.ReadFile(path + DeltaLogExt)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		h.log.Error("reading local delta log", "path", path+DeltaLogExt, "err", err)
	}
	consumed := 0
	for _, rec := range readRecords(b) {
		var sd manifestv1.SignedDelta
		if proto.Unmarshal(rec, &sd) != nil || h.offerDelta(&sd, false) != nil {
			break
		}
		consumed += 4 + len(rec)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.State().Env(target); e != nil && consumed == len(b) {
		h.disk[target] = &diskState{last: e.Version(), fullSize: fullSize, logSize: int64(consumed)}
	}
}
