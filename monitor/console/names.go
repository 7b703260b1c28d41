package console

import (
	"fmt"
	"html/template"
	"sort"
	"strings"
)

// The console's dictionary of names: partners, flows, stages, operations,
// error classes and partner families, each in zh-CN and English. Every
// page shows these names instead of the identifiers events carry, and a
// test renders every page in zh-CN and fails on any identifier the
// dictionary misses (see TestEveryPageIsChinese).
//
// A new partner family adds one line per partner id (or one id prefix),
// one line per flow it emits, and one line in flowOps placing each flow
// under an operation of the overview. Unknown ids still show, marked as
// untranslated, so that nothing an event names is ever hidden.

// partnerNames are exact partner ids.
var partnerNames = map[string][2]string{
	"":                {"本平台(民政局)", "The hub (bureau)"},
	"hub":             {"本平台(民政局)", "The hub (bureau)"},
	"district":        {"区级平台", "District platforms"},
	"bank.boc":        {"中国银行", "Bank of China"},
	"bank.bocom":      {"交通银行", "Bank of Communications"},
	"bank.ceb":        {"光大银行", "China Everbright Bank"},
	"bank.cmb":        {"招商银行", "China Merchants Bank"},
	"bank.spdb":       {"浦发银行", "SPD Bank"},
	"bank.ccb":        {"建设银行", "China Construction Bank"},
	"cardcenter":      {"卡中心", "Card center"},
	"datasea":         {"数据海(大数据中心)", "Data sea (big-data center)"},
	"portal.joblib":   {"一网通办办件库", "Job library (one-stop portal)"},
	"portal.mianshen": {"免申即享", "No-application benefits"},
	"joblib":          {"办件库(旧标识)", "Job library (old id)"},
	"samr":            {"市场监督管理局", "Market supervision bureau"},
	"hrss":            {"人社局", "Human resources & social security"},
	"hpf":             {"公积金中心", "Housing provident fund center"},
	"ministry":        {"部级数据安全交换平台", "Ministry data exchange platform"},
	"fundcontrol":     {"资金内控系统", "Fund internal-control system"},
	"bureau":          {"局内业务系统", "Bureau systems"},
	"bureau.business": {"局内业务系统", "Bureau business systems"},
	// Partner groups of the topology (services declare them).
	"banks":                                  {"六家银行", "The six banks"},
	"data sea":                               {"数据海", "Data sea"},
	"card center":                            {"卡中心", "Card center"},
	"funeral homes":                          {"殡仪馆", "Funeral homes"},
	"funeral homes, cemeteries, columbaria":  {"殡仪馆、公墓、骨灰堂", "Funeral homes, cemeteries, columbaria"},
	"funeral homes (booking)":                {"殡仪馆(预约)", "Funeral homes (booking)"},
	"bureau systems (/internal/funeral/v1/)": {"局内业务系统(殡葬查询与预约)", "Bureau systems (funeral read and booking)"},
	"job library":                            {"一网通办办件库", "Job library (one-stop portal)"},
	"no-application benefits":                {"免申即享", "No-application benefits"},
	"business system (files)":                {"局内业务系统(文件)", "Bureau business system (files)"},
	"verification-centre":                    {"核对中心", "Verification centre"},
	"verification centre (/internal/verification/v1/)":  {"核对中心(核对接口)", "Verification centre (API)"},
	"social security, housing fund":                     {"人社局、公积金中心", "Social security, housing fund"},
	"market supervision":                                {"市场监督管理局", "Market supervision"},
	"village banks":                                     {"村镇银行", "Village banks"},
	"ministry platform (other provinces)":               {"部级平台(外省核对)", "Ministry platform (other provinces)"},
	"ministry platform (requests from other provinces)": {"部级平台(外省请求)", "Ministry platform (requests from other provinces)"},
}

// partnerPrefixes name the members of a partner family by the rest of
// their id ("villagebank.02" is 村镇银行 02) when partnerNames has no
// exact entry.
var partnerPrefixes = []struct {
	prefix string
	name   [2]string
}{
	{"bank.", [2]string{"银行 ", "Bank "}},
	{"villagebank.", [2]string{"村镇银行 ", "Village bank "}},
	{"funeral.", [2]string{"殡仪馆 ", "Funeral home "}},
	{"cemetery.", [2]string{"公墓 ", "Cemetery "}},
	{"columbarium.", [2]string{"骨灰堂 ", "Columbarium "}},
	{"province.", [2]string{"外省 ", "Province "}},
}

// flowNames are the flows events carry.
var flowNames = map[string][2]string{
	"disbursement":           {"津贴发放", "Allowance disbursement"},
	"deduction":              {"季度扣款", "Quarterly deduction"},
	"allowance":              {"老年综合津贴", "Elderly allowance"},
	"reports":                {"统计报表", "Reports"},
	"account-verify":         {"账户核查", "Account verification"},
	"account-open":           {"开户", "Account opening"},
	"account-activate":       {"账户激活", "Account activation"},
	"loss-report":            {"挂失", "Loss report"},
	"loss-unfreeze":          {"解挂失", "Loss unfreeze"},
	"account-cancel":         {"注销", "Account cancellation"},
	"card-apply":             {"敬老卡申领", "Card applications"},
	"card-production":        {"制卡数据", "Card production"},
	"card-status":            {"卡状态查询", "Card status query"},
	"applications":           {"申领", "Applications"},
	"death":                  {"死亡数据", "Death records"},
	"migration":              {"户籍迁移", "Migration records"},
	"recipients-push":        {"入海(津贴对象)", "Recipients to the sea"},
	"datasea-files":          {"数据海批量文件", "Data sea batch files"},
	"datasea-frontend":       {"数据海前置机库表", "Data sea front-end tables"},
	"case-pull":              {"办件拉取", "Case pull"},
	"status-push":            {"办件状态推送", "Case status push"},
	"mianshen-push":          {"免申即享推送", "Eligible persons push"},
	"mianshen-fetch":         {"免申即享获取", "Eligible persons fetch"},
	"mianshen-confirm":       {"部门确认", "Department confirmation"},
	"mianshen-payout":        {"兑付", "Payout"},
	"portal-inbox":           {"一网通办业务文件", "Portal business files"},
	"verification":           {"经济状况核对", "Household finance verification"},
	"samr-canteen":           {"长者食堂比对", "Canteen match"},
	"samr-abnormal":          {"经营异常名录", "Abnormal-operation list"},
	"samr-registration":      {"工商信息", "Enterprise registration"},
	"hrss-nursing":           {"工伤护理费核查", "Nursing-fee check"},
	"ministry-request":       {"跨省核对", "Cross-province verification"},
	"ministry-answer":        {"外省请求应答", "Answers to other provinces"},
	"ministry-authorization": {"个人电子授权", "Personal e-authorization"},
	"funeral-push":           {"殡葬资源推送", "Funeral resource push"},
	"resource-sync":          {"殡葬资源同步", "Funeral resource sync"},
	"burial-push":            {"落葬数据推送", "Burial record push"},
	"funeral-booking":        {"殡葬预约", "Funeral booking"},
	"funeral-api":            {"殡葬接口", "Funeral API"},
}

// stageNames are the stages of batches (the allowance cycle's and the
// pipelines events show).
var stageNames = map[string][2]string{
	"intake":      {"名单接收", "List intake"},
	"validate":    {"名单校验", "List checks"},
	"total_check": {"总额核对", "Total check"},
	"confirm":     {"区市两级确认", "Confirmation"},
	"files":       {"生成银行文件", "Bank files"},
	"upload":      {"发送银行", "Upload to banks"},
	"send":        {"发送银行", "Upload to banks"},
	"returns":     {"回盘处理", "Bank returns"},
	"reconcile":   {"回盘对账", "Reconciliation"},
	"failures":    {"失败处理", "Failed payments"},
	"report":      {"统计报表", "Report"},
	"done":        {"完成", "Done"},
	"police":      {"公安数据接收", "Police data"},
	"review":      {"抽检复核", "Manual review"},
	// The banks' account lifecycle (services/bankaccounts).
	"account_files":    {"生成账户业务文件", "Account files"},
	"account_upload":   {"发送账户业务文件", "Account files sent"},
	"account_results":  {"账户业务结果处理", "Account results"},
	"account_failures": {"开户失败", "Failed account openings"},
}

// errorNames are error classes and codes.
var errorNames = map[string][2]string{
	"format":                  {"格式错误", "format"},
	"config":                  {"配置错误", "configuration"},
	"breaker":                 {"熔断(对方不可用)", "circuit open (partner down)"},
	"breaker_open":            {"熔断开启", "circuit opened"},
	"breaker_half-open":       {"熔断试探", "circuit half-open"},
	"breaker_closed":          {"熔断恢复", "circuit closed"},
	"payment_failed":          {"支付失败", "payment failed"},
	"duplicate":               {"重复文件", "duplicate file"},
	"malformed_return_record": {"回盘记录格式错误", "malformed return record"},
	"missing_records":         {"回盘记录缺失", "records missing from the return"},
	"return_late":             {"回盘逾期", "return late"},
	"trailer_mismatch":        {"汇总行不符", "trailer mismatch"},
	"return_refused":          {"回盘文件被拒收", "return file refused"},
	"handler":                 {"处理失败", "handler failed"},
	"expectation_missed":      {"预期未到", "expectation missed"},
	"transport":               {"传输错误", "transport"},
	"in_doubt":                {"投递待定", "in doubt"},
	"in_doubt_send":           {"投递待定(已发出, 未获应答)", "in doubt: sent, no answer"},
	"in_doubt_status_unknown": {"投递待定(状态查询无应答)", "in doubt: status query unanswered"},
	"in_doubt_unchecked":      {"投递待定(对方无状态查询)", "in doubt: partner cannot be asked"},
	"permanent":               {"永久错误", "permanent"},
	"timeout":                 {"超时", "timeout"},
	"transient":               {"临时错误", "transient"},
	"quality":                 {"数据质量", "data quality"},
	"quality_threshold":       {"数据质量低于阈值", "quality below threshold"},
	"incomplete":              {"数据不完整", "incomplete answer"},
	"stale":                   {"数据过期", "stale data"},
	"late":                    {"逾期未答复", "no answer in time"},
	"timeliness":              {"及时性", "timeliness"},
	"validation":              {"校验失败", "validation"},
	"http_400":                {"请求错误(400)", "bad request (400)"},
	"http_401":                {"未认证(401)", "unauthenticated (401)"},
	"http_403":                {"拒绝访问(403)", "forbidden (403)"},
	"http_404":                {"不存在(404)", "not found (404)"},
	"http_429":                {"限流(429)", "rate limited (429)"},
	"http_500":                {"对方内部错误(500)", "partner error (500)"},
	"http_502":                {"网关错误(502)", "bad gateway (502)"},
	"http_503":                {"对方不可用(503)", "unavailable (503)"},
	"http_504":                {"网关超时(504)", "gateway timeout (504)"},
}

// accountOutcomeNames name the hub's classes of a bank's answer to an
// account operation (services/bankaccounts, the banks' status code tables).
var accountOutcomeNames = map[string][2]string{
	"ok":         {"成功", "ok"},
	"mismatch":   {"户名与证件不符", "name and ID do not match"},
	"id_invalid": {"证件号码无效", "ID number invalid"},
	"not_found":  {"账户不存在", "account not found"},
	"frozen":     {"账户冻结", "account frozen"},
	"closed":     {"账户已注销", "account closed"},
	"lost":       {"账户已挂失", "account reported lost"},
	"not_lost":   {"账户未挂失", "account not reported lost"},
	"duplicate":  {"重复申请", "duplicate request"},
	"other":      {"其他原因", "other reason"},
}

// alertRuleNames name the alert rules.
var alertRuleNames = map[string][2]string{
	"error_rate":      {"错误率", "error rate"},
	"backlog":         {"死信积压", "dead-letter backlog"},
	"staleness":       {"超时未成功", "no success in time"},
	"reconciliation":  {"对账不符", "reconciliation mismatch"},
	"expectation":     {"预期文件未到", "expected file missing"},
	"quality":         {"数据质量低于阈值", "data quality below threshold"},
	"failed_payments": {"支付失败超阈值", "failed payments above threshold"},
	"trailer":         {"汇总行不符", "trailer mismatch"},
	"late_return":     {"回盘逾期", "late return"},
	"partner_down":    {"交换方不可用", "partner down"},
}

// severityNames name alert severities.
var severityNames = map[string][2]string{
	"critical": {"严重", "critical"},
	"warning":  {"警告", "warning"},
	"info":     {"提示", "info"},
}

// lookup finds key in dict for language l; ok is false for a miss.
func lookup(dict map[string][2]string, l int, key string) (string, bool) {
	if n, ok := dict[key]; ok {
		return n[l], true
	}
	return key, false
}

// partnerName names a partner id in language l.
func partnerName(l int, id string) (string, bool) {
	if n, ok := partnerNames[id]; ok {
		return n[l], true
	}
	for _, p := range partnerPrefixes {
		if rest, ok := strings.CutPrefix(id, p.prefix); ok && rest != "" {
			return p.name[l] + strings.ToUpper(rest), true
		}
	}
	return id, false
}

// name renders one dictionary lookup: the name, or the identifier itself
// marked untranslated (the zh-CN completeness test looks for the mark).
func (p *page) name(s string, ok bool, key string) template.HTML {
	if ok {
		return template.HTML(template.HTMLEscapeString(s))
	}
	p.miss(key)
	return template.HTML(`<span class="untranslated" title="` + template.HTMLEscapeString(key) + `">` + template.HTMLEscapeString(s) + `</span>`)
}

// miss records a key the dictionary lacks; the footer lists them.
func (p *page) miss(key string) {
	if p.missing == nil {
		p.missing = map[string]bool{}
	}
	p.missing[key] = true
}

// Partner names a partner id.
func (p *page) Partner(id string) template.HTML {
	if p.names != nil {
		if n, ok := p.names(id); ok && p.L == 0 {
			return p.name(n, true, "")
		}
	}
	s, ok := partnerName(p.L, id)
	return p.name(s, ok, "partner:"+id)
}

// PartnerText is Partner as plain text (for attributes and charts).
func (p *page) PartnerText(id string) string {
	if p.names != nil {
		if n, ok := p.names(id); ok && p.L == 0 {
			return n
		}
	}
	s, ok := partnerName(p.L, id)
	if !ok {
		p.miss("partner:" + id)
	}
	return s
}

// Flow names a flow.
func (p *page) Flow(f string) template.HTML {
	s, ok := lookup(flowNames, p.L, f)
	return p.name(s, ok, "flow:"+f)
}

// Stage names a batch stage.
func (p *page) Stage(s string) template.HTML {
	n, ok := lookup(stageNames, p.L, s)
	return p.name(n, ok, "stage:"+s)
}

// ErrorName names an error class or code ("" shows nothing).
func (p *page) ErrorName(c string) template.HTML {
	if c == "" {
		return ""
	}
	if strings.Trim(c, "0123456789") == "" {
		return template.HTML(c) // a numeric code reads the same in every language
	}
	n, ok := lookup(errorNames, p.L, c)
	return p.name(n, ok, "error:"+c)
}

// Rule names an alert rule.
func (p *page) Rule(r string) template.HTML {
	n, ok := lookup(alertRuleNames, p.L, r)
	return p.name(n, ok, "rule:"+r)
}

// Severity names an alert severity.
func (p *page) Severity(s any) template.HTML {
	k := fmt.Sprint(s)
	n, ok := lookup(severityNames, p.L, k)
	return p.name(n, ok, "severity:"+k)
}

// AccountOutcome names the class of a bank's answer to an account operation.
func (p *page) AccountOutcome(o string) template.HTML {
	n, ok := lookup(accountOutcomeNames, p.L, o)
	return p.name(n, ok, "outcome:"+o)
}

// Op names an overview operation.
func (p *page) Op(op string) template.HTML {
	if f, ok := strings.CutPrefix(op, "flow:"); ok {
		return p.Flow(f)
	}
	n, ok := lookup(opNames, p.L, op)
	return p.name(n, ok, "op:"+op)
}

// Family names a partner family.
func (p *page) Family(f string) template.HTML {
	n, ok := lookup(familyNames, p.L, f)
	return p.name(n, ok, "family:"+f)
}

// Missing lists the keys this page could not translate so far.
func (p *page) Missing() string {
	keys := make([]string, 0, len(p.missing))
	for k := range p.missing {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, " ")
}
