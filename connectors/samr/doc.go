// Package samr is the connector of the market supervision bureau
// (市场监督管理局), a REST service: for household verification the
// companies household members registered or hold shares in (工商信息),
// with the registered capital they hold as an asset; beside it the other
// lookups the tender names there: a community elderly canteen's food
// business licence, and the abnormal-operation list (经营异常名录). The
// simulator is samrsim.
package samr
