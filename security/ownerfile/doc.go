// Package ownerfile writes files that only their owner may read (mode
// 0600: key sets, reports and converted files that carry personal data)
// atomically: the content goes to a temporary file in the same directory,
// is synced, and is renamed into place, so a reader sees the old file or
// the whole new one, never half, and a failed write leaves no file behind.
package ownerfile
