package gateway

// ModelAlias maps a dated model snapshot to the alias a catalog prices: it removes one trailing
// date suffix, "-YYYY-MM-DD" (OpenAI: gpt-5-mini-2025-08-07 → gpt-5-mini) or "-YYYYMMDD"
// (Anthropic: claude-sonnet-4-5-20250929 → claude-sonnet-4-5). Anything else is returned as it
// is, and so is a name that would be left empty. Only the shape is checked (digits, dashes, a
// month 01–12 and a day 01–31), not the calendar.
func ModelAlias(model string) string {
	n := len(model)
	switch {
	case n > 11 && model[n-11] == '-' && model[n-6] == '-' && model[n-3] == '-' &&
		digits(model[n-10:n-6]) && digits(model[n-5:n-3]) && digits(model[n-2:]) &&
		validMonthDay(model[n-5:n-3], model[n-2:]):
		return model[:n-11]
	case n > 9 && model[n-9] == '-' && digits(model[n-8:]) && validMonthDay(model[n-4:n-2], model[n-2:]):
		return model[:n-9]
	}
	return model
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validMonthDay checks two-digit month and day strings already known to be digits.
func validMonthDay(mm, dd string) bool {
	m := int(mm[0]-'0')*10 + int(mm[1]-'0')
	d := int(dd[0]-'0')*10 + int(dd[1]-'0')
	return m >= 1 && m <= 12 && d >= 1 && d <= 31
}
