package routes

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/mappings"
)

// Headers set by a map step with a mapping.
const (
	HeaderRecords   = "mzhub-records"
	HeaderAmountFen = "mzhub-amount-fen"
	HeaderRejected  = "mzhub-rejected"
)

// MappingsMapper runs map steps with the mapping engine (package mappings):
// the body is a whole file in the source layout, the result the file in the
// target layout. A mapping is named by its path under the mappings
// directory, with or without ".mapping.yaml" (banks/boc-disbursement-return).
// A file with rejected records or whose trailer does not match its details
// is a permanent failure: it is dead-lettered for an operator, never half
// delivered.
type MappingsMapper struct {
	loader *mappings.Loader
	mu     sync.Mutex
	cache  map[string]*mappings.Mapping
}

// NewMappingsMapper returns a mapper over the mappings directory dir (configs/mappings).
func NewMappingsMapper(dir string) *MappingsMapper {
	return NewMappingsMapperFS(os.DirFS(dir))
}

// NewMappingsMapperFS returns a mapper over a file system of mappings.
func NewMappingsMapperFS(fsys fs.FS) *MappingsMapper {
	return &MappingsMapper{loader: mappings.NewLoader(fsys), cache: map[string]*mappings.Mapping{}}
}

// mapping loads (once) and returns a compiled mapping.
func (m *MappingsMapper) mapping(name string) (*mappings.Mapping, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mp := m.cache[name]; mp != nil {
		return mp, nil
	}
	file := name
	if !strings.HasSuffix(file, ".yaml") {
		file += ".mapping.yaml"
	}
	mp, err := m.loader.Mapping(file)
	if err != nil {
		return nil, err
	}
	m.cache[name] = mp
	return mp, nil
}

// Check reports whether a mapping loads.
func (m *MappingsMapper) Check(name string) error {
	_, err := m.mapping(name)
	return err
}

// Map converts msg.Body with the named mapping.
func (m *MappingsMapper) Map(ctx context.Context, name string, msg bus.Message) (bus.Message, error) {
	mp, err := m.mapping(name)
	if err != nil {
		return msg, connectors.Permanent(err)
	}
	var (
		out     bytes.Buffer
		rejects []string
	)
	res, err := mp.Convert(ctx, bytes.NewReader(msg.Body), &out, mappings.ConvertOptions{
		OnReject: func(r mappings.Reject) {
			if !r.Warning && len(rejects) < 5 {
				rejects = append(rejects, r.String())
			}
		},
	})
	if err != nil {
		return msg, connectors.Permanent(err)
	}
	if res.Rejected > 0 {
		return msg, connectors.Permanent(fmt.Errorf("%d records rejected: %s", res.Rejected, strings.Join(rejects, "; ")))
	}
	if res.CheckErr != nil {
		return msg, connectors.Permanent(fmt.Errorf("trailer check: %w", res.CheckErr))
	}
	h := make(map[string]string, len(msg.Headers)+3)
	for k, v := range msg.Headers {
		h[k] = v
	}
	h[HeaderRecords] = strconv.FormatInt(res.Written, 10)
	h[HeaderAmountFen] = strconv.FormatInt(res.WrittenFen, 10)
	msg.Headers = h
	msg.Body = out.Bytes()
	return msg, nil
}
