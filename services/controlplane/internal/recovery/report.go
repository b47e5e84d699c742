package recovery

import (
	"fmt"
	"io"
	"strings"
)

// WriteText prints the report operators read (docs/operations.md shows it):
// one block per environment with the versions and every key created, updated,
// archived, deleted or revoked, then the environments left alone.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	if r.DryRun {
		b.WriteString("dry run: nothing was written\n")
	}
	restored, upToDate := 0, 0
	for _, e := range r.Environments {
		if e.UpToDate {
			upToDate++
			fmt.Fprintf(&b, "%s: up to date (database at version %d, newest snapshot %d); nothing to do\n",
				e.Environment, e.VersionBefore, e.SnapshotVersion)
			continue
		}
		restored++
		verb := "recovered"
		if r.DryRun {
			verb = "would recover"
		}
		fmt.Fprintf(&b, "%s: %s from snapshot version %d (key %s): version %d -> %d, the next published version is %d\n",
			e.Environment, verb, e.SnapshotVersion, e.SnapshotKeyID, e.VersionBefore, e.SnapshotVersion, e.SnapshotVersion+1)
		line := func(what string, parts ...any) {
			var items []string
			for i := 0; i+1 < len(parts); i += 2 {
				if keys := parts[i+1].([]string); len(keys) > 0 {
					items = append(items, fmt.Sprintf("%s %d [%s]", parts[i], len(keys), strings.Join(keys, " ")))
				}
			}
			if len(items) == 0 {
				items = []string{"unchanged"}
			}
			fmt.Fprintf(&b, "  %-9s %s\n", what+":", strings.Join(items, ", "))
		}
		line("flags", "created", e.FlagsCreated, "updated", e.FlagsUpdated, "archived", e.FlagsArchived)
		line("configs", "updated", e.ConfigsUpdated)
		line("segments", "created", e.SegmentsCreated, "updated", e.SegmentsUpdated, "deleted", e.SegmentsDeleted)
		line("sdk keys", "created", e.SDKKeysCreated, "updated", e.SDKKeysUpdated, "revoked", e.SDKKeysRevoked)
	}
	for _, t := range r.NoSnapshot {
		fmt.Fprintf(&b, "%s: no snapshot; left as the database has it\n", t)
	}
	for _, t := range r.NotInDatabase {
		fmt.Fprintf(&b, "%s: has snapshots but the database has no such environment; not recovered (create its project and environment, then run again)\n", t)
	}
	verb := "recovered"
	if r.DryRun {
		verb = "to recover"
	}
	fmt.Fprintf(&b, "summary: %d %s, %d up to date, %d without snapshot, %d not in the database\n",
		restored, verb, upToDate, len(r.NoSnapshot), len(r.NotInDatabase))
	_, err := io.WriteString(w, b.String())
	return err
}
