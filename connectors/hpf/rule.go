package hpf

// MaxRepaymentPermille is the fund's lending limit: a loan's monthly
// repayment stays within 50% of the borrower's monthly income.
const MaxRepaymentPermille = 500

// WageFromContribution is the monthly wage a person's own monthly
// contribution implies at the contribution rate (per mille):
// contribution = wage × rate. Zero for a rate of zero.
func WageFromContribution(contributionFen, ratePermille int64) int64 {
	if ratePermille <= 0 {
		return 0
	}
	return contributionFen * 1000 / ratePermille
}

// IncomeFromLoan is the least monthly income a monthly repayment implies
// under MaxRepaymentPermille.
func IncomeFromLoan(repaymentFen int64) int64 {
	return repaymentFen * 1000 / MaxRepaymentPermille
}
