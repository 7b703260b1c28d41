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
	"needs_action":          {"待处理", "Needs action"},
	"batch_pipelines":       {"批次交换过程", "Batch pipelines"},

	// Allowance cycles (batches page, the overview's needs-action strip).
	"cycles":                             {"发放与扣款周期", "Allowance cycles"},
	"cycle_kind":                         {"类型", "Kind"},
	"cycle_kind_disbursement":            {"低保发放", "Disbursement"},
	"cycle_kind_deduction":               {"季度扣款", "Deduction"},
	"cycle_period":                       {"期间", "Period"},
	"cycle_stage":                        {"阶段", "Stage"},
	"cycle_stage_intake":                 {"名单接收", "List intake"},
	"cycle_stage_validate":               {"名单校验", "List checks"},
	"cycle_stage_total_check":            {"总额核对", "Total check"},
	"cycle_stage_confirm":                {"区市两级确认", "Confirmation"},
	"cycle_stage_files":                  {"生成银行文件", "Bank files"},
	"cycle_stage_upload":                 {"发送银行", "Upload to banks"},
	"cycle_stage_returns":                {"回盘处理", "Bank returns"},
	"cycle_stage_failures":               {"失败处理", "Failed payments"},
	"cycle_stage_report":                 {"统计报表", "Report"},
	"cycle_stage_done":                   {"完成", "Done"},
	"cycle_status_queued":                {"排队中", "queued"},
	"cycle_status_running":               {"运行中", "running"},
	"cycle_status_awaiting_letter_total": {"待录入发函总额", "awaiting the letter total"},
	"cycle_status_awaiting_confirmation": {"待确认", "awaiting confirmation"},
	"cycle_status_failed":                {"失败", "failed"},
	"cycle_status_done":                  {"已完成", "done"},
	"cycle_next_letter":                  {"请录入发函总额", "enter the letter total"},
	"cycle_next_district":                {"待区级确认", "district confirmation due"},
	"cycle_next_city":                    {"待市级确认", "city confirmation due"},
	"cycle_next_resume":                  {"排除原因后恢复运行", "fix the cause, then resume"},
	"cycle_valid":                        {"有效/全部记录", "Valid / all records"},
	"cycle_system_total":                 {"系统总额(元)", "System total (yuan)"},
	"cycle_letter_total":                 {"发函总额(元)", "Letter total (yuan)"},
	"cycle_letter_later":                 {"可稍后录入", "may follow later"},
	"cycle_level":                        {"确认级别", "Level"},
	"cycle_level_district":               {"区级确认", "District confirmation"},
	"cycle_level_city":                   {"市级确认", "City confirmation"},
	"cycle_list":                         {"名单文件", "List file"},
	"cycle_inbox":                        {"名单收件目录", "Inbox"},
	"cycle_inbox_empty":                  {"收件目录中没有名单文件", "no list file in the inbox"},
	"cycle_finished":                     {"结束", "Finished"},
	"cycle_quarantined":                  {"隔离的回盘记录", "Quarantined return records"},
	"cycle_issues":                       {"校验发现", "Findings"},
	"cycle_start":                        {"发起批次", "Start a batch"},
	"cycle_act_start":                    {"发起批次", "Start"},
	"cycle_act_letter-total":             {"录入发函总额", "Enter letter total"},
	"cycle_act_confirm-district":         {"区级确认", "Confirm (district)"},
	"cycle_act_confirm-city":             {"市级确认", "Confirm (city)"},
	"cycle_act_resume":                   {"恢复运行", "Resume"},
	"cycle_hint_other_account":           {"须由区级确认人以外的账号确认", "another account than the district's must confirm"},
	"cycle_confirm_start":                {"确定发起该批次?名单将被接收并校验,此操作将被审计。", "Start this batch? The list is taken in and checked; this is audited."},
	"cycle_confirm_letter-total":         {"确定录入该发函总额?与系统总额不符时批次停止,不发送任何文件。", "Enter this letter total? If it differs from the system total the batch stops and nothing is sent."},
	"cycle_confirm_confirm-district":     {"确定以本账号进行区级确认?此操作将被审计。", "Confirm at district level with your account? This is audited."},
	"cycle_confirm_confirm-city":         {"确定以本账号进行市级确认?确认后将向银行发送文件。", "Confirm at city level with your account? The bank files go out after it."},
	"cycle_confirm_resume":               {"确定恢复运行该批次?将从失败的阶段继续。", "Resume this batch from the stage that failed?"},
	"cycle_err_same_confirmer":           {"市级确认须由与区级确认不同的账号进行", "The city level must be confirmed by another account than the district"},
	"cycle_err_order":                    {"确认顺序不对:须先区级确认,且批次须处于确认阶段", "Out of order: the district confirms first, at the confirmation stage"},
	"cycle_err_done":                     {"该批次已完成", "This batch is done"},
	"cycle_err_list_taken":               {"该批次已接收名单;新名单须发起新批次", "This batch took its list in already; a new list needs a new batch"},
	"cycle_err_period":                   {"期间格式应为 年-月(如 2026-11)", "The period must be YYYY-MM"},
	"cycle_err_list":                     {"请选择收件目录中的名单文件", "Choose a list file from the inbox"},
	"cycle_err_kind":                     {"类型须为低保发放或季度扣款", "Kind must be disbursement or deduction"},
	"cycle_err_amount":                   {"金额格式不对:请输入元,最多两位小数,如 2639850.00", "Not an amount: yuan with at most two decimals, e.g. 2639850.00"},
	"cycle_err_no_cycle":                 {"没有该批次", "No such batch"},
	"cycle_err_unavailable":              {"发放周期暂时无法读取", "The allowance cycles cannot be read now"},
	"payment_listed":                     {"待发送", "listed"},
	"payment_rejected":                   {"校验拒绝", "rejected"},
	"payment_sent":                       {"已发送待回盘", "sent"},
	"payment_paid":                       {"已入账", "paid"},
	"payment_failed":                     {"失败", "failed"},
	"payment_missing":                    {"无回盘", "missing"},
	"issue_already_paid":                 {"本期已发放", "already paid"},
	"issue_bad_amount":                   {"金额不正确", "bad amount"},
	"issue_bad_id":                       {"身份证号不正确", "bad ID number"},
	"issue_malformed":                    {"记录格式错误", "malformed record"},
	"issue_past_quarter_end":             {"超出季度末", "past the quarter's end"},
	"issue_past_termination":             {"已终止享受", "past termination"},
	"issue_two_standards":                {"重复享受多个标准", "listed under two standards"},
	"issue_unknown_bank":                 {"未知银行", "unknown bank"},
	"issue_shared_account":               {"多人共用账户", "account shared by several persons"},
	"issue_carried":                      {"上期失败结转", "carried over from a failed payment"},

	// The topology page.
	"nav_topology":   {"拓扑", "Topology"},
	"topo_intro":     {"运行中配置的交换拓扑：交换方 → 路由 → 主题 → 服务 → 交换方。数字为本进程的计数。", "The running configuration's exchange topology: partner → route → topic → service → partner. Numbers are this process's counters."},
	"topo_span":      {"速率与错误统计的时间范围：近", "Rates and errors cover the last"},
	"topo_no_sample": {"刚启动：下一次采样后显示速率。", "Just started: rates show after the next sample."},
	"topo_problems":  {"悬空主题", "Dangling topics"},
	"topo_from":      {"从", "From"},
	"topo_to":        {"到", "To"},
	"topo_busy":      {"有流量", "traffic"},
	"topo_idle":      {"无流量", "idle"},
	"channel":        {"通道", "Channel"},
	"rate_per_min":   {"速率(条/分钟)", "Rate (per minute)"},
	"errors_window":  {"错误(时间范围内)", "Errors (in the window)"},
	"errors_short":   {"错", "err"},
	"per_min":        {"/分", "/min"},
	"total":          {"累计", "Total"},
	"declared_at":    {"声明位置", "Declared at"},
	"not_metered":    {"不可计量", "not metered"},
	"kind_partner":   {"交换方", "partner"},
	"kind_route":     {"路由", "route"},
	"kind_topic":     {"主题", "topic"},
	"kind_service":   {"服务", "service"},
	"kind_external":  {"外部系统", "external system"},
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
