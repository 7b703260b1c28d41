package store

import "errors"

// Sentinel errors of the state store. Match them with errors.Is.
var (
	// ErrUnknownDriver is returned by Open for a driver other than sqlite or postgres.
	ErrUnknownDriver = errors.New("store: unknown driver")
	// ErrMigrationGap means the database holds a migration version the binary
	// does not know (a newer binary migrated it) or a version is missing.
	ErrMigrationGap = errors.New("store: migration history does not match this binary")
	// ErrBadMigrationName is returned for a migration file not named NNN_name.sql.
	ErrBadMigrationName = errors.New("store: bad migration file name")
	// ErrBusy means a SQLite writer did not get its turn within the busy
	// timeout (the process's write gate); IsTransient reports it.
	ErrBusy = errors.New("store: busy: no turn at the write lock within the busy timeout")
)
