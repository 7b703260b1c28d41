package bankaccounts

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// Screener is the shape of the disbursement intake's list screening
// (services/disbursement.Screener).
type Screener interface {
	Screen(ctx context.Context, period string, in io.Reader, out, report io.Writer) (kept, excluded int64, summary string, err error)
}

var _ Screener = (*Service)(nil)

// BatchOf, when set, names the allowance batch being screened (for the
// 开户失败 stage's events); the hub sets it from the disbursement intake.
type BatchOf func(ctx context.Context) string

// SetBatchOf sets how Screen learns the batch it screens.
func (s *Service) SetBatchOf(f BatchOf) { s.batchOf = f }

type blocked struct{ state, account, reason string }

// Screen applies the account states to an allowance list (the
// disbursement list format, person_id,name,account,bank,…): a person
// whose opening or verification at the listed bank failed is left out
// (开户失败 / 核查失败, with the bank's reason), and so is a listed account
// reported lost (挂失), frozen or closed (注销). A released loss (解挂失)
// or a later successful operation restores payment. Every left-out line
// is reported (masked) with its reason; the same input gives the same
// output.
func (s *Service) Screen(ctx context.Context, period string, in io.Reader, out, report io.Writer) (kept, excluded int64, summary string, err error) {
	block := map[string]blocked{}
	rows, err := s.db.QueryContext(ctx, `SELECT person, bank, state, account_index, reason FROM acct_state
		WHERE state IN ('open_failed', 'verify_failed', 'lost', 'frozen', 'closed')`)
	if err != nil {
		return 0, 0, "", fmt.Errorf("accounts: screen: %w", err)
	}
	for rows.Next() {
		var person, code string
		var b blocked
		if err := rows.Scan(&person, &code, &b.state, &b.account, &b.reason); err != nil {
			rows.Close()
			return 0, 0, "", err
		}
		block[person+"/"+code] = b
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, "", err
	}
	br := bufio.NewReaderSize(in, 256<<10)
	bw := bufio.NewWriterSize(out, 256<<10)
	rw := bufio.NewWriter(report)
	fmt.Fprint(rw, "\uFEFF")
	fmt.Fprintln(rw, "line,person,action,reason,months,amount_fen")
	counts := map[string]int64{}
	line := 0
	for {
		text, rerr := br.ReadString('\n')
		if text == "" && rerr != nil {
			if rerr != io.EOF {
				return 0, 0, "", rerr
			}
			break
		}
		line++
		body := strings.TrimRight(text, "\r\n")
		f := strings.SplitN(body, ",", 7)
		if line == 1 && strings.HasPrefix(body, "person_id,") || len(f) < 6 || len(block) == 0 {
			// The heading, a line the intake's own checks judge, or no account blocked at all.
			fmt.Fprintln(bw, body)
			if !(line == 1 && strings.HasPrefix(body, "person_id,")) {
				kept++
			}
			continue
		}
		b, ok := block[s.PersonKey(f[0])+"/"+f[3]]
		if ok && (b.state == StateOpenFailed || b.state == StateVerifyFailed || b.account == "" || b.account == s.accountKey(f[2])) {
			excluded++
			label := labelOf(b.state)
			counts[label]++
			fen, _ := strconv.ParseInt(f[5], 10, 64)
			reason := label
			if b.reason != "" {
				reason += " " + b.reason
			}
			fmt.Fprintf(rw, "%d,%s,left_out,%s,,%d\n", line, mask.IDNumber(f[0]), strings.ReplaceAll(reason, ",", "，"), fen)
			continue
		}
		fmt.Fprintln(bw, body)
		kept++
	}
	if err := bw.Flush(); err != nil {
		return 0, 0, "", err
	}
	if err := rw.Flush(); err != nil {
		return 0, 0, "", err
	}
	var parts []string
	for _, l := range []string{"开户失败", "核查失败", "挂失", "冻结", "注销"} {
		if counts[l] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", l, counts[l]))
		}
	}
	summary = "账户: " + strings.Join(parts, ", ")
	if len(parts) == 0 {
		summary = "账户: 无异常"
	}
	if excluded > 0 {
		batch := ""
		if s.batchOf != nil {
			batch = s.batchOf(ctx)
		}
		s.emit(monitor.Event{Type: monitor.Validated, Status: monitor.Warning, Partner: "hub", Flow: "account-open", BatchID: batch,
			Stage: StageFailures, RecordsFailed: excluded, Records: kept, FileName: "screening.csv", ErrorClass: "account_failed",
			ErrorMessage: fmt.Sprintf("%s: %d persons left out of %s until their accounts are fixed", summary, excluded, period)})
	}
	return kept, excluded, summary, nil
}

func labelOf(state string) string {
	switch state {
	case StateOpenFailed:
		return "开户失败"
	case StateVerifyFailed:
		return "核查失败"
	case StateLost:
		return "挂失"
	case StateFrozen:
		return "冻结"
	}
	return "注销"
}

// Chain runs a list through first and then second, as one Screener: the
// list first writes is what second reads (through a pipe, never whole in
// memory); second's report lines follow first's, without their heading.
func Chain(first, second Screener) Screener { return chain{first, second} }

type chain struct{ first, second Screener }

func (c chain) Screen(ctx context.Context, period string, in io.Reader, out, report io.Writer) (int64, int64, string, error) {
	pr, pw := io.Pipe()
	type result struct {
		excluded int64
		summary  string
		err      error
	}
	done := make(chan result, 1)
	go func() {
		_, ex, sum, err := c.first.Screen(ctx, period, in, pw, report)
		pw.CloseWithError(err)
		done <- result{ex, sum, err}
	}()
	var rep bytes.Buffer
	kept, ex2, sum2, err := c.second.Screen(ctx, period, pr, out, &rep)
	if err != nil {
		pr.CloseWithError(err)
	}
	_, _ = io.Copy(io.Discard, pr) // let first finish if second stopped early
	r1 := <-done
	if r1.err != nil {
		return 0, 0, "", r1.err
	}
	if err != nil {
		return 0, 0, "", err
	}
	// Second's report without its BOM and heading.
	body := rep.Bytes()
	if i := bytes.IndexByte(body, '\n'); i >= 0 {
		body = body[i+1:]
	}
	if _, err := report.Write(body); err != nil {
		return 0, 0, "", err
	}
	return kept, r1.excluded + ex2, r1.summary + "; " + sum2, nil
}
