package pulsar

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// EnsureNamespace creates tenant (allowed on cluster) and tenant/namespace
// through the admin REST API at adminURL (e.g. http://127.0.0.1:8080) when
// they are missing, and sets the policies the bus relies on: retention (a
// new subscription starts at the earliest retained message; 7 days or
// 1 GiB) and broker deduplication. It is what deploy/pulsar/setup.sh does,
// for tests and for `mzhub` start-up checks.
func EnsureNamespace(ctx context.Context, client *http.Client, adminURL, tenant, namespace, cluster string) error {
	if client == nil {
		client = http.DefaultClient
	}
	base := strings.TrimRight(adminURL, "/")
	steps := []struct{ method, path, body string }{
		{http.MethodPut, "/admin/v2/tenants/" + tenant, fmt.Sprintf(`{"allowedClusters":[%q],"adminRoles":[]}`, cluster)},
		{http.MethodPut, "/admin/v2/namespaces/" + tenant + "/" + namespace, ""},
		{http.MethodPost, "/admin/v2/namespaces/" + tenant + "/" + namespace + "/retention", `{"retentionTimeInMinutes":10080,"retentionSizeInMB":1024}`},
		{http.MethodPost, "/admin/v2/namespaces/" + tenant + "/" + namespace + "/deduplication", `true`},
	}
	for _, s := range steps {
		var body io.Reader
		if s.body != "" {
			body = bytes.NewBufferString(s.body)
		}
		req, err := http.NewRequestWithContext(ctx, s.method, base+s.path, body)
		if err != nil {
			return fmt.Errorf("pulsar admin: %s %s: %w", s.method, s.path, err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("pulsar admin: %s %s: %w", s.method, s.path, err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusConflict {
			return fmt.Errorf("pulsar admin: %s %s: HTTP %d: %s", s.method, s.path, resp.StatusCode, bytes.TrimSpace(msg))
		}
	}
	return nil
}
