// Package all blank-imports the built-in connectors so that they register
// themselves. Only cmd/ imports it; tests build their own registries.
package all

import (
	_ "github.com/shanghai-mca/mzhub/connectors/cardcenter"  // kind "cardcenter": card center feeds (申领, 制卡)
	_ "github.com/shanghai-mca/mzhub/connectors/datasea"     // kind "datasea": the data sea's API feeds (数据海)
	_ "github.com/shanghai-mca/mzhub/connectors/dbtable"     // kind "dbtable": front-end processor tables (前置机库表交换)
	_ "github.com/shanghai-mca/mzhub/connectors/funeralhome" // kind "funeral": funeral homes' booking API
	_ "github.com/shanghai-mca/mzhub/connectors/hpf"         // kind "hpf": housing fund (verification)
	_ "github.com/shanghai-mca/mzhub/connectors/hrss"        // kinds "hrss" and "hrss-frontend": social security (verification)
	_ "github.com/shanghai-mca/mzhub/connectors/httpx"       // kind "http": HTTP source and sink
	_ "github.com/shanghai-mca/mzhub/connectors/joblib"      // kind "joblib": one-stop portal job library and 免申即享
	_ "github.com/shanghai-mca/mzhub/connectors/ministry"    // kind "ministry": ministry platform (verification)
	_ "github.com/shanghai-mca/mzhub/connectors/samr"        // kind "samr": market supervision (verification)
	_ "github.com/shanghai-mca/mzhub/connectors/sftp"        // kind "sftp": SFTP poll source
	_ "github.com/shanghai-mca/mzhub/connectors/soap"        // kind "soap": WebService calls
	_ "github.com/shanghai-mca/mzhub/connectors/villagebank" // kind "villagebank": village banks (verification)
)
