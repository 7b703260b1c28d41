package console

import (
	"fmt"
	"net/http"
)

// messages holds each UI string in zh-CN and English.
var messages = map[string][2]string{
	"title":                 {"信息交换流程监管", "Exchange supervision"},
	"nav_health":            {"健康矩阵", "Health matrix"},
	"nav_calendar":          {"预期文件日历", "Expected files"},
	"nav_batches":           {"批次进程", "Batch pipeline"},
	"nav_search":            {"交换查询", "Exchange search"},
	"nav_failures":          {"失败与死信", "Failures & dead letters"},
	"nav_alerts":            {"告警", "Alerts"},
	"nav_charts":            {"吞吐与时延", "Throughput & latency"},
	"nav_quality":           {"数据质量", "Data quality"},
	"partner":               {"交换方", "Partner"},
	"flow":                  {"业务流", "Flow"},
	"last_ok":               {"最近成功", "Last success"},
	"schedule":              {"计划间隔", "Schedule"},
	"err_1h":                {"错误率 1小时", "Error rate 1 h"},
	"err_24h":               {"错误率 24小时", "Error rate 24 h"},
	"p95":                   {"P95 时延", "p95 latency"},
	"backlog":               {"积压", "Backlog"},
	"events":                {"事件数", "Events"},
	"never":                 {"从未", "never"},
	"none":                  {"无", "none"},
	"reason_error_rate":     {"错误率过高", "error rate high"},
	"reason_error_rate_24h": {"24小时错误率偏高", "error rate high over 24 h"},
	"reason_stale":          {"超过计划未成功", "no success within schedule"},
	"reason_never":          {"尚无数据", "nothing received yet"},
	"reason_backlog":        {"死信积压", "dead-letter backlog"},
	"search":                {"查询", "Search"},
	"exchange_id":           {"交换编号", "Exchange id"},
	"batch":                 {"批次", "Batch"},
	"stage":                 {"阶段", "Stage"},
	"file":                  {"文件", "File"},
	"partner_ref":           {"对方流水号", "Partner reference"},
	"business_key":          {"业务键(已脱敏)", "Business key (masked)"},
	"time":                  {"时间", "Time"},
	"type":                  {"步骤", "Step"},
	"status":                {"状态", "Status"},
	"direction":             {"方向", "Direction"},
	"records":               {"记录数", "Records"},
	"records_failed":        {"失败记录", "Failed records"},
	"amount":                {"金额(元)", "Amount (yuan)"},
	"duration":              {"耗时", "Duration"},
	"attempt":               {"尝试", "Attempt"},
	"error":                 {"错误", "Error"},
	"lineage":               {"血缘", "Lineage"},
	"parents":               {"来源", "From"},
	"no_results":            {"没有结果", "No results"},
	"records_in":            {"输入记录", "Records in"},
	"records_out":           {"输出记录", "Records out"},
	"first_at":              {"开始", "Started"},
	"last_at":               {"最近", "Latest"},
	"stuck":                 {"停滞", "stuck"},
	"error_class":           {"错误类别", "Error class"},
	"count":                 {"次数", "Count"},
	"dead_letters":          {"死信", "Dead letters"},
	"open_dead_letters":     {"待处理死信", "Open dead letters"},
	"sample":                {"示例", "Sample"},
	"actions":               {"操作", "Actions"},
	"retry":                 {"重试", "Retry"},
	"replay":                {"重放", "Replay"},
	"drop":                  {"丢弃", "Drop"},
	"confirm":               {"确认", "Confirm"},
	"cancel":                {"取消", "Cancel"},
	"confirm_action":        {"请确认操作", "Please confirm"},
	"reason":                {"原因", "Reason"},
	"operator":              {"操作人", "Operator"},
	"done":                  {"已完成", "Done"},
	"rule":                  {"规则", "Rule"},
	"severity":              {"级别", "Severity"},
	"summary":               {"摘要", "Summary"},
	"state":                 {"状态", "State"},
	"ack":                   {"确认收到", "Acknowledge"},
	"resolve":               {"解决", "Resolve"},
	"note":                  {"备注", "Note"},
	"open":                  {"未处理", "open"},
	"acked":                 {"已确认", "acknowledged"},
	"resolved":              {"已解决", "resolved"},
	"due":                   {"截止", "Due"},
	"met_at":                {"到达", "Arrived"},
	"pending":               {"等待中", "pending"},
	"met":                   {"已到达", "arrived"},
	"missed":                {"已逾期", "missed"},
	"expectation":           {"预期", "Expectation"},
	"throughput":            {"吞吐(事件/时段)", "Throughput (events per bucket)"},
	"latency":               {"P95 时延(毫秒)", "p95 latency (ms)"},
	"errors":                {"错误", "Errors"},
	"window":                {"时间范围", "Window"},
	"score":                 {"质量分", "Quality score"},
	"completeness":          {"完整性", "Completeness"},
	"format":                {"格式", "Format"},
	"timeliness":            {"及时性", "Timeliness"},
	"sampling":              {"抽样复核", "Sampling"},
	"download_csv":          {"下载 CSV", "Download CSV"},
	"download_html":         {"下载 HTML 报告", "Download HTML report"},
	"first_seen":            {"首次", "First"},
	"user":                  {"处理人", "By"},
	"all":                   {"全部", "all"},
	"lang_switch":           {"English", "中文"},
	"generated":             {"生成于", "Generated"},
	"not_configured":        {"未配置", "not configured"},
	"dl_confirm_retry":      {"确定重试该交换?", "Retry this exchange?"},
	"dl_confirm_replay":     {"确定重放该交换?", "Replay this exchange?"},
	"dl_confirm_drop":       {"确定丢弃该交换?此操作将被审计。", "Drop this exchange? This is audited."},
	"action_failed":         {"操作失败", "Action failed"},
	"operator_required":     {"请填写操作人", "Operator name required"},
}

// stepNames translate event types and statuses (zh-CN); English shows the
// identifiers as they are.
var stepNames = map[string]string{
	"received": "接收", "fetched": "拉取", "sent": "发送", "uploaded": "上传", "downloaded": "下载",
	"claimed": "认领", "transformed": "转换", "validated": "校验", "reconciled": "对账", "retried": "重试",
	"failed": "失败", "rejected": "拒收", "dead_lettered": "转入死信", "replayed": "重放", "dropped": "丢弃",
	"expectation_missed": "预期未到", "stage_changed": "阶段完成",
	"ok": "成功", "warning": "警告", "error": "错误",
	"in": "入", "out": "出", "internal": "内部",
}

// step names a type, status or direction in the page's language.
func (p *page) Step(v any) string {
	s := fmt.Sprint(v)
	if p.L == 0 {
		if n, ok := stepNames[s]; ok {
			return n
		}
	}
	return s
}

// lang picks the language: ?lang= wins and is remembered in a cookie.
func lang(w http.ResponseWriter, r *http.Request) int {
	l := r.URL.Query().Get("lang")
	if l == "" {
		if c, err := r.Cookie("mzhub_lang"); err == nil {
			l = c.Value
		}
	} else {
		http.SetCookie(w, &http.Cookie{Name: "mzhub_lang", Value: l, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	if l == "en" {
		return 1
	}
	return 0
}

func tr(l int, key string) string {
	if m, ok := messages[key]; ok {
		return m[l]
	}
	return key
}
