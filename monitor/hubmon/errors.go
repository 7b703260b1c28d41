package hubmon

import "errors"

var errNoClickHouse = errors.New("monitor: the clickhouse store is not built yet")
