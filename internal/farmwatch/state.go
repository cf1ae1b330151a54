package farmwatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// stateVersion changes when the file's meaning does; an unknown version is
// treated like a corrupt file.
const stateVersion = 1

type stateFile struct {
	Version int           `json:"version"`
	Saved   time.Time     `json:"saved"`
	Miners  []stateRecord `json:"miners"`
}

// stateRecord is what survives a restart: identity, where the miner was, and
// enough of its history that a miner already offline stays offline (no
// second alert) and a slow miner is judged against its old average.
type stateRecord struct {
	Listener   string    `json:"listener"`
	Worker     string    `json:"worker"`
	SubAccount string    `json:"sub_account,omitempty"`
	Address    string    `json:"address,omitempty"`
	UserAgent  string    `json:"user_agent,omitempty"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	LastShare  time.Time `json:"last_share"`
	Hashrate   float64   `json:"hashrate"`
	Average    float64   `json:"average_hashrate"`
	AvgSince   time.Time `json:"average_since"`
	Difficulty float64   `json:"difficulty,omitempty"`
	Status     Status    `json:"status"`
	Since      time.Time `json:"status_since"`
}

// load reads the state file. Every failure is a log line: the registry is a
// convenience, and a farm must never stay down because of it.
func (w *Watcher) load() {
	path := w.opts.StateFile
	if path == "" {
		return
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		w.log.WithField("file", path).Info("farm-watch: no state file yet; starting with an empty miner list")
		return
	}
	if err != nil {
		w.log.WithError(err).WithField("file", path).Warn("farm-watch: cannot read the state file; starting with an empty miner list")
		return
	}
	var sf stateFile
	if err := json.Unmarshal(data, &sf); err != nil || sf.Version != stateVersion {
		if err == nil {
			err = fmt.Errorf("version %d, want %d", sf.Version, stateVersion)
		}
		w.log.WithError(err).WithField("file", path).Warn("farm-watch: state file is corrupt; starting with an empty miner list (it is rewritten at the next save)")
		return
	}
	n := 0
	for _, r := range sf.Miners {
		if r.Worker == "" || r.Listener == "" {
			continue
		}
		b := w.book(r.Listener)
		i, ok := b.index[r.Worker]
		if !ok {
			i = b.add(r.Worker)
		}
		rec := b.rec(i)
		*rec = record{
			sub: intern(r.SubAccount), ua: intern(r.UserAgent), firstSeen: nanoOf(r.FirstSeen), lastSeen: nanoOf(r.LastSeen),
			lastShare: nanoOf(r.LastShare), since: nanoOf(r.Since), avgSince: nanoOf(r.AvgSince), avgAt: nanoOf(r.LastSeen),
			hashrate: r.Hashrate, average: r.Average, difficulty: r.Difficulty, status: stateOf(r.Status),
		}
		// A file written by save holds addresses as rendered, which parse
		// back to the same text.
		if a, err := netip.ParseAddrPort(r.Address); err == nil {
			rec.setAddress(a)
		}
		// The last share is folded into the average when the miner is next
		// seen, as if it had just arrived.
		rec.pending = rec.lastShare != 0
		n++
	}
	w.log.WithFields(map[string]any{"file": path, "miners": n}).Info("farm-watch: known miners loaded")
}

// save writes the state file when it is due (or always, with force). The
// file is replaced atomically: written to a temporary file in the same
// directory, synced, then renamed over the old one, so a crash or a full
// disk leaves either the old list or the new one, never half of one.
func (w *Watcher) save(now time.Time, force bool) {
	w.mu.Lock()
	path := w.opts.StateFile
	if path == "" || (!force && (!w.dirty || now.Sub(w.lastSave) < w.opts.SaveInterval)) {
		w.mu.Unlock()
		return
	}
	sf := stateFile{Version: stateVersion, Saved: now.UTC(), Miners: make([]stateRecord, 0, w.known())}
	for _, b := range w.books {
		for worker, i := range b.index {
			r := b.rec(i)
			sf.Miners = append(sf.Miners, stateRecord{
				Listener: b.name, Worker: worker, SubAccount: text(r.sub), Address: r.address(), UserAgent: text(r.ua),
				FirstSeen: r.firstSeen.t(), LastSeen: r.lastSeen.t(), LastShare: r.lastShare.t(), Hashrate: r.hashrate, Average: r.average,
				AvgSince: r.avgSince.t(), Difficulty: r.difficulty, Status: r.status.Status(), Since: r.since.t(),
			})
		}
	}
	w.lastSave, w.dirty = now, false
	w.mu.Unlock()
	data, err := json.Marshal(&sf)
	if err == nil {
		err = writeAtomic(path, data)
	}
	if err != nil {
		w.log.WithError(err).WithField("file", path).Warn("farm-watch: cannot save the known miners")
		w.mu.Lock()
		w.dirty = true
		w.mu.Unlock()
	}
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	ok = true
	// The rename is durable once the directory is synced; not every
	// platform can sync a directory, and the data is already safe.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
