package codec

// DefaultWorkerName is what sserver registers for an empty worker name.
const DefaultWorkerName = "__default__"

// MaxAgentLen is where sserver cuts the client agent; the agent cuts it first
// so that REGISTER frames stay within MaxRegisterLen.
const MaxAgentLen = 30

// nameAllowed is sserver's worker/agent character filter: [A-Za-z0-9-._:|^/].
func nameAllowed(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', ':', '|', '^', '/':
		return true
	}
	return false
}

// FilterName removes every character the pool would remove, so the name the
// agent logs and reports is the name the pool shows.
func FilterName(s string) string {
	for i := 0; i < len(s); i++ {
		if !nameAllowed(s[i]) {
			out := make([]byte, 0, len(s))
			for j := 0; j < len(s); j++ {
				if nameAllowed(s[j]) {
					out = append(out, s[j])
				}
			}
			return string(out)
		}
	}
	return s
}

// SplitWorker applies the legacy naming rule: "john.a001" registers as worker
// "a001" (everything after the first dot); a name without a dot is used whole;
// an empty result becomes DefaultWorkerName.
func SplitWorker(user string) string {
	for i := 0; i < len(user); i++ {
		if user[i] == '.' {
			user = user[i+1:]
			break
		}
	}
	user = FilterName(user)
	if user == "" {
		return DefaultWorkerName
	}
	return user
}

// FitRegister filters both strings, cuts the agent to MaxAgentLen and then the
// worker name so that the REGISTER_WORKER frame is at most MaxRegisterLen
// bytes: sserver silently ignores longer frames, which would leave the miner
// unregistered and every one of its shares dropped without an answer.
func FitRegister(agent, worker string) (string, string) {
	agent = FilterName(agent)
	if len(agent) > MaxAgentLen {
		agent = agent[:MaxAgentLen]
	}
	worker = FilterName(worker)
	if worker == "" {
		worker = DefaultWorkerName
	}
	if room := MaxRegisterLen - 6 - (len(agent) + 1) - 1; len(worker) > room {
		worker = worker[:room]
	}
	return agent, worker
}
