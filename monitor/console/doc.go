// Package console is the exchange-supervision web console (信息交换流程监管):
// server-rendered html/template pages with embedded assets and server-side
// SVG charts, so it works from the binary with no internet access. zh-CN is
// the default language; ?lang=en switches to English (kept in a cookie).
package console
